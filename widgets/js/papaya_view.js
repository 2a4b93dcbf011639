// The widget view: one Papaya container per view, kept in line with the model, one step at a time.
//
// Building Papaya and the positions sent back to Python are in papaya_view_parts.js; the
// edit mode's tools in papaya_edit.js.

const EDIT_TRAITS = ["edit_overlay", "edit_tool", "brush_mm", "brush_depth"];

// ---------------------------------------------------------------------- the view
class PapayaView {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.papaya = loadPapaya();
    this.transfers = transfersOf(model);
    this.index = null; // this view's slot in Papaya's global `papayaContainers`
    this.shown = { base: null, part: null, overlays: [] }; // what Papaya draws: layer keys
    this.geometry = null; // {axes, stride, shape} of the base image Papaya draws
    this.pendingLoad = null;
    this.reported = null;
    this.watched = new Set(); // overlay child models listened to
    this.appliedCursor = -1;
    this.syncing = false;
    this.again = false;
    this.pressing = false;
    this.movedWhilePressing = false;
    this.lastSent = null;
    this.width = 0;

    el.classList.add("imaging-papaya");
    el.dataset.papaya = PAPAYA_VERSION;
    this.frame = document.createElement("div");
    this.frame.className = "imaging-papaya-frame";
    this.busy = document.createElement("div");
    this.busy.className = "imaging-papaya-busy";
    this.busy.innerHTML = '<span class="imaging-papaya-spinner"></span><span class="imaging-papaya-busy-label"></span>';
    this.error = document.createElement("div");
    this.error.className = "imaging-papaya-error";
    this.error.setAttribute("role", "alert");
    this.fullscreen = document.createElement("button");
    this.fullscreen.className = "imaging-papaya-fullscreen";
    this.fullscreen.type = "button";
    this.fullscreen.title = "Full screen";
    this.fullscreen.setAttribute("aria-label", "Full screen");
    this.fullscreen.innerHTML =
      '<svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true"><path d="M1 6V1h5M10 1h5v5M15 10v5h-5M6 15H1v-5"' +
      ' fill="none" stroke="currentColor" stroke-width="2"/></svg>';
    this.fullscreen.addEventListener("click", () => this.toggleFullscreen());
    el.append(this.frame, this.busy, this.error, this.fullscreen);
    el.imagingPapaya = this; // for tests and debugging from the page
    this.edit = new EditTools(this);
    this.setStatus("empty");

    this.onChange = () => {
      this.prefetch();
      this.sync();
    };
    this.onBusy = () => this.showBusy();
    this.onNotice = () => this.showError();
    this.onMessage = (msg) => this.handleMessage(msg);
    this.onEditChange = () => this.edit.sync();
    for (const name of ["_volume", "_overlays", "window_min", "window_max", "_cursor", "main_view"]) {
      model.on(`change:${name}`, this.onChange);
    }
    for (const name of EDIT_TRAITS) {
      model.on(`change:${name}`, this.onEditChange);
    }
    model.on("change:busy", this.onBusy);
    model.on("change:busy_message", this.onBusy);
    model.on("change:_notice", this.onNotice);
    model.on("msg:custom", this.onMessage);

    this.onMouseDown = (event) => {
      if (this.edit.mouseDown(event)) {
        return; // a stroke or a fill: Papaya does not see it
      }
      if (event.button === 0 && !event.altKey && !event.ctrlKey) {
        this.pressing = true;
        this.movedWhilePressing = false;
      }
    };
    this.onMouseUp = () => {
      if (this.pressing && this.movedWhilePressing) {
        this.sendPosition("click");
      }
      this.pressing = false;
    };
    this.onFullscreen = () => {
      this.el.classList.toggle("imaging-papaya-is-fullscreen", document.fullscreenElement === this.el);
      this.resize(true);
    };
    this.frame.addEventListener("mousedown", this.onMouseDown, true);
    window.addEventListener("mouseup", this.onMouseUp, true);
    document.addEventListener("fullscreenchange", this.onFullscreen);

    this.resizeObserver = new ResizeObserver(() => this.resize(false));
    this.resizeObserver.observe(this.el);
    this.showBusy();
    this.showError();
    this.onChange();
  }

  // ------------------------------------------------------------------ status
  setStatus(status, detail) {
    this.el.dataset.status = status;
    this.papayaError = status === "error" ? detail : "";
    this.showError();
    this.showBusy();
  }

  showError() {
    const messages = [this.model.get("_notice"), this.papayaError].filter((text) => text);
    this.error.textContent = messages.join("\n");
  }

  showBusy() {
    const status = this.el.dataset.status;
    const loading = status === "loading" || status === "preview";
    const busy = this.model.get("busy") || loading;
    const label = this.model.get("busy")
      ? this.model.get("busy_message")
      : status === "preview"
        ? "Preview: loading full resolution…"
        : "Loading image…";
    this.busy.style.display = busy ? "flex" : "none";
    this.busy.querySelector(".imaging-papaya-busy-label").textContent = label;
    this.el.dataset.busy = busy ? "true" : "false";
  }

  fail(err) {
    const message = String(err && err.message ? err.message : err);
    console.error("PapayaViewer:", err);
    this.setStatus("error", message);
    this.model.send({ type: "error", message });
  }

  // ------------------------------------------------------------------ layout
  get container() {
    return this.index === null ? null : window.papayaContainers[this.index];
  }

  get viewer() {
    const container = this.container;
    return container && container.viewer.initialized ? container.viewer : null;
  }

  toggleFullscreen() {
    if (document.fullscreenElement === this.el) {
      document.exitFullscreen();
    } else if (this.el.requestFullscreen) {
      this.el.requestFullscreen().catch((err) => console.warn("PapayaViewer: no full screen:", err));
    }
  }

  // Canvas size for Papaya: the frame's width, and the height the widget is given (its
  // layout height, or the screen in full screen); three planes take 1.5 times as wide as high.
  viewerDimensions(container) {
    const papaya = this.papaya;
    const ratio = container.orthogonal ? 1.5 : 1;
    const below = papaya.viewer.Display.SIZE + (container.kioskMode ? 0 : papaya.ui.Toolbar.SIZE) + 8;
    let width = Math.max(this.frame.clientWidth, 64);
    let height = width / ratio;
    const constrained = document.fullscreenElement === this.el || (this.el.style.height && this.el.style.height !== "auto");
    if (constrained) {
      const available = Math.max(this.el.clientHeight - below, 64);
      if (height > available) {
        height = available;
        width = height * ratio;
      }
    }
    return [Math.floor(width), Math.floor(height)];
  }

  resize(force) {
    const width = Math.floor(this.frame.clientWidth);
    const container = this.container;
    if (!container || (!force && width === this.width && !this.el.style.height)) {
      return;
    }
    this.width = width;
    if (width > 0 && container.viewer.initialized) {
      container.resizeViewerComponents(true);
    }
  }

  // ------------------------------------------------------------------ model -> Papaya
  // Bring Papaya in line with the model, one step at a time, until nothing changed meanwhile.
  async sync() {
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = true;
    try {
      do {
        this.again = false;
        try {
          await this.syncImages();
        } catch (err) {
          if (!(err instanceof GoneError)) {
            throw err;
          }
        }
        this.applyDisplay();
        this.applyCursor();
        this.reportPainted();
        this.edit.sync();
      } while (this.again);
    } catch (err) {
      this.fail(err);
    } finally {
      this.syncing = false;
    }
  }

  // Ask now for every layer the model wants, so that all of them travel while Papaya draws.
  async prefetch() {
    const spec = this.model.get("_volume") || {};
    if (!spec.id) {
      return;
    }
    const base = Transfers.key(spec.id, spec.version);
    this.transfers.request(spec.id, spec.version, Boolean(spec.preview) && this.shown.base !== base);
    try {
      for (const child of await this.overlayModels()) {
        this.transfers.request(child.get("layer_id"), child.get("version"), false);
      }
    } catch (err) {
      // a model closed meanwhile: the next change brings the new list
    }
  }

  async overlayModels() {
    const refs = this.model.get("_overlays") || [];
    const models = await Promise.all(
      refs.map((ref) => this.model.widget_manager.get_model(String(ref).slice(MODEL_PREFIX.length)))
    );
    for (const child of models) {
      if (!this.watched.has(child)) {
        this.watched.add(child);
        child.on("change", this.onChange, this);
      }
    }
    for (const child of this.watched) {
      if (!models.includes(child)) {
        child.off(null, null, this);
        this.watched.delete(child);
      }
    }
    return models;
  }

  async syncImages() {
    const spec = this.model.get("_volume") || {};
    if (!spec.id) {
      return;
    }
    const overlays = (await this.overlayModels()).map((child) => ({
      model: child,
      key: Transfers.key(child.get("layer_id"), child.get("version")),
      id: child.get("layer_id"),
      version: child.get("version"),
    }));
    const baseKey = Transfers.key(spec.id, spec.version);
    this.transfers.retain(new Set([baseKey, ...overlays.map((overlay) => overlay.key)]));
    this.edit.masks.retain(new Set(overlays.map((overlay) => overlay.id)));
    // Any change of the model meanwhile (it sets `again`) ends this pass: the next one starts afresh.
    const stale = () => this.again || (this.model.get("_volume") || {}).id !== spec.id;

    if (this.shown.base !== baseKey || this.shown.part !== "full") {
      const firstTime = this.shown.base !== baseKey;
      const base = this.transfers.request(spec.id, spec.version, Boolean(spec.preview) && firstTime);
      // Ask for the overlays now, so that they travel while Papaya draws the base.
      const entries = overlays.map((overlay) => this.transfers.request(overlay.id, overlay.version, false));
      this.setStatus(this.shown.base === baseKey ? "preview" : "loading");
      if (base.preview && firstTime) {
        const first = await Promise.race([base.preview.promise, base.full.promise]);
        if (stale()) {
          return;
        }
        if (first && first.part === "preview") {
          await this.rebuild(spec, first, []);
          this.shown = { base: baseKey, part: "preview", overlays: [] };
          this.setStatus("preview");
        }
      }
      const full = await base.full.promise;
      if (stale()) {
        return;
      }
      // Overlays already here go in this build (in order); the others are added as they come.
      const arrived = entries.findIndex((entry) => !entry.full.done);
      const ready = arrived < 0 ? overlays : overlays.slice(0, arrived);
      const data = await Promise.all(ready.map((overlay, index) => entries[index].full.promise));
      await this.rebuild(
        spec,
        full,
        ready.map((overlay, index) => ({ settings: overlaySettings(overlay.model), buffer: data[index].buffer })),
      );
      this.shown = { base: baseKey, part: "full", overlays: ready.map((overlay) => overlay.key) };
    }

    const wanted = overlays.map((overlay) => overlay.key);
    for (const key of this.shown.overlays.filter((shown) => !wanted.includes(shown))) {
      this.papaya.Container.removeImage(this.index, this.shown.overlays.indexOf(key) + 1);
      this.shown.overlays.splice(this.shown.overlays.indexOf(key), 1);
    }
    for (const overlay of overlays) {
      if (this.shown.overlays.includes(overlay.key)) {
        continue;
      }
      this.setStatus("loading");
      const data = await this.transfers.request(overlay.id, overlay.version, false).full.promise;
      if (stale()) {
        return;
      }
      await this.addOverlay(overlaySettings(overlay.model), data.buffer);
      this.shown.overlays.push(overlay.key);
    }
    this.setStatus("ready");
  }


  applyDisplay() {
    const viewer = this.viewer;
    if (!viewer) {
      return;
    }
    const base = viewer.screenVolumes[0];
    const low = this.model.get("window_min");
    const high = this.model.get("window_max");
    if (low !== null && high !== null) {
      base.setScreenRange(low, high);
    } else {
      base.resetScreenRange();
    }
    for (const child of this.watched) {
      const key = Transfers.key(child.get("layer_id"), child.get("version"));
      const screen = viewer.screenVolumes[this.shown.overlays.indexOf(key) + 1];
      if (!screen || this.shown.overlays.indexOf(key) < 0) {
        continue;
      }
      const settings = overlaySettings(child);
      const { name, table } = colorTableFor(this.papaya, settings);
      if (screen.lutName !== name) {
        screen.colorTable = table;
        screen.lutName = name;
        screen.updateIcon();
        screen.updateColorBar();
      }
      if (settings.min !== null && settings.max !== null) {
        screen.setScreenRange(settings.min, settings.max);
      }
      screen.alpha = settings.alpha;
    }
    viewer.drawViewer(true, false);
    this.el.dataset.overlays = String(this.shown.overlays.length);
  }

  applyCursor() {
    const viewer = this.viewer;
    const cursor = this.model.get("_cursor");
    if (!viewer || !this.geometry || !cursor || !cursor.ijk || cursor.seq === this.appliedCursor) {
      return;
    }
    this.appliedCursor = cursor.seq;
    // A mouse press leaves a timer that re-applies the pressed position a little later:
    // cancel it, or a goto right after a click would be undone.
    viewer.resetUpdateTimer(null);
    viewer.gotoCoordinate(toInternal(viewer.volume, volumeToFile(this.geometry, cursor.ijk)), true);
    this.lastSent = this.currentVoxel().ijk.join(",");
    this.el.dataset.voxel = this.lastSent;
  }

  // Tell Python once that everything it holds is drawn at full resolution.
  reportPainted() {
    const spec = this.model.get("_volume") || {};
    if (this.el.dataset.status !== "ready" || this.shown.part !== "full" || !spec.id) {
      return;
    }
    const signature = [this.shown.base, ...this.shown.overlays].join("|");
    if (signature === this.reported) {
      return;
    }
    this.reported = signature;
    requestAnimationFrame(() => {
      this.el.dataset.volumeId = spec.id;
      this.model.send({
        type: "painted",
        volume_id: spec.id,
        overlays: this.shown.overlays.map((key) => key.split(":")[0]),
        load_ms: this.loadMs,
        width: this.viewer ? this.viewer.canvas.width : 0,
      });
    });
  }

  handleMessage(msg) {
    if (msg && msg.type === "report_position") {
      this.sendPosition("report");
    }
  }

  destroy() {
    this.resizeObserver.disconnect();
    window.removeEventListener("mouseup", this.onMouseUp, true);
    document.removeEventListener("fullscreenchange", this.onFullscreen);
    for (const name of ["_volume", "_overlays", "window_min", "window_max", "_cursor", "main_view"]) {
      this.model.off(`change:${name}`, this.onChange);
    }
    for (const name of EDIT_TRAITS) {
      this.model.off(`change:${name}`, this.onEditChange);
    }
    this.edit.destroy();
    this.model.off("change:busy", this.onBusy);
    this.model.off("change:busy_message", this.onBusy);
    this.model.off("change:_notice", this.onNotice);
    this.model.off("msg:custom", this.onMessage);
    for (const child of this.watched) {
      child.off(null, null, this);
    }
    this.watched.clear();
    const container = this.container;
    if (container && container.viewer) {
      // Drop the document-level key listeners and the image data of a removed view.
      container.viewer.resetViewer();
    }
  }
}
