// A page's lifetime: its polls stop when the user navigates away.

import { clearError, showError } from "./dom.js";

export class Scope {
  constructor() {
    this.alive = true;
    this.stops = [];
  }

  /**
   * Call `fn` now and then every `ms` after it finishes (never overlapping). A failure
   * shows in `box` (when given) and polling goes on; a 401 stops it (the app logs out),
   * and so does `fn` returning false (e.g. the resource is gone).
   */
  poll(fn, ms = 2000, box = null) {
    let timer = null;
    const tick = async () => {
      if (!this.alive) return;
      try {
        const more = await fn();
        if (box) clearError(box);
        if (more === false) return;
      } catch (err) {
        if (err && err.status === 401) return;
        if (box && this.alive) showError(box, err);
      }
      if (this.alive) timer = setTimeout(tick, ms);
    };
    this.stops.push(() => clearTimeout(timer));
    tick();
  }

  dispose() {
    this.alive = false;
    this.stops.forEach((stop) => stop());
  }
}
