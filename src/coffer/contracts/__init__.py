"""Wire schemas shared by the API, the client and the agent."""
