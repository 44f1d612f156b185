"""Options shared by every module of coffer.dbaas (``extends_documentation_fragment``)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  endpoint:
    description:
      - Coffer's project endpoint, C(http://HOST:PORT/v1.0/PROJECT_ID).
      - Defaults to the environment variable E(COFFER_ENDPOINT).
    type: str
    required: true
  token:
    description:
      - An API token of the project; defaults to E(COFFER_TOKEN). Never logged.
    type: str
    required: true
  api_timeout:
    description: Seconds to wait for each API request.
    type: float
    default: 30
  state:
    description: Whether the resource should exist.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - The C(coffer) Python package, importable by the Python that runs the module
    (the controller's, with C(connection=local)).
notes:
  - Supports check mode; the result says what would change, and nothing is changed.
  - API errors fail the task with the server's message.
"""
