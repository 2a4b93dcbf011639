// Front end of widgets.PapayaViewer: an anywidget view that embeds the Papaya viewer.
//
// `build.mjs` prepends `const PAPAYA_SOURCE = "<papaya.js>";` (the npm papaya-viewer
// "nodicom" release, jQuery included) and writes widgets/static/papaya_widget.js.
//
// Papaya is a global script: it is evaluated once per page with an indirect eval while
// `define`/`require` are hidden (RequireJS pages would otherwise capture its jQuery).
//
// Images are *layers* (the base volume, then one per overlay child model), each with an
// id and a version. A page asks the kernel for a layer it lacks ({type: "fetch"}); the
// kernel answers with NIfTI bytes in chunks of a few MiB (a few ahead of the page's
// acknowledgements, taking turns between layers), copied once into one
// ArrayBuffer that Papaya reads in place (named on `window`, as Papaya requires); a 0/1
// mask comes packed one bit per voxel and is unpacked into it. A large volume comes as a
// downsampled preview first. Chunks arrive on the viewer's own model;
// its views on one page share the transfers.
//
// Positions go back to Python as the volume's own voxel indices (i, j, k): Papaya shows
// the voxel grid of the file reoriented to its display orientation; `toNative` and
// `toInternal` undo and redo that with Papaya's own matrices, then the file's axis order
// (a C-ordered array is sent as its transpose) and the preview's voxel step.

/* global PAPAYA_SOURCE, PAPAYA_VERSION */

const PAGE_KEY = "__imagingLabPapaya";
const MODEL_PREFIX = "IPY_MODEL_";

function pageState() {
  return (window[PAGE_KEY] = window[PAGE_KEY] || { papaya: null, transfers: new Map(), images: 0 });
}

function viewOf(container) {
  const holder = container && container.containerHtml && container.containerHtml[0];
  const root = holder && holder.closest ? holder.closest(".imaging-papaya") : null;
  return root ? root.imagingPapaya : null;
}

function loadPapaya() {
  const page = pageState();
  if (page.papaya) {
    return page.papaya;
  }
  const hidden = { define: window.define, require: window.require };
  window.define = undefined;
  window.require = undefined;
  try {
    (0, eval)(PAPAYA_SOURCE);
  } finally {
    window.define = hidden.define;
    window.require = hidden.require;
  }
  const papaya = window.papaya;
  // Papaya builds every `.papaya` element on window load and scrolls the page to the
  // top on every window resize: the widget builds its own containers and resizes them
  // from a ResizeObserver instead.
  window.removeEventListener("load", papaya.Container.startPapaya, false);
  window.removeEventListener("resize", papaya.Container.resizePapaya, false);
  window.removeEventListener("orientationchange", papaya.Container.reorientPapaya, false);
  // Papaya makes a new container object on every reset: hook the prototypes once and
  // find the widget view from the container's element.
  const Container = papaya.Container.prototype;
  const dimensions = Container.getViewerDimensions;
  Container.getViewerDimensions = function () {
    const view = viewOf(this);
    return view ? view.viewerDimensions(this) : dimensions.call(this);
  };
  const coordinateChanged = Container.coordinateChanged;
  Container.coordinateChanged = function (viewer) {
    coordinateChanged.call(this, viewer);
    const view = viewOf(this);
    if (view) {
      view.coordinateChanged();
    }
  };
  const drawError = papaya.viewer.Display.prototype.drawError;
  papaya.viewer.Display.prototype.drawError = function (message) {
    drawError.call(this, message);
    const view = viewOf(this.container);
    if (view) {
      view.papayaFailed(message);
    }
  };
  page.papaya = papaya;
  return papaya;
}

function mib(bytes) {
  return `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
}

// ---------------------------------------------------------------------- transfers
class GoneError extends Error {}

function deferred() {
  const part = { done: false, buffer: null, received: 0 };
  part.promise = new Promise((resolve, reject) => {
    part.resolve = resolve;
    part.reject = reject;
  });
  part.promise.catch(() => {}); // a part nobody awaits any more must not be an unhandled rejection
  return part;
}

// The layers of one viewer model on this page: fetched once, shared by its views.
class Transfers {
  constructor(model) {
    this.model = model;
    this.layers = new Map(); // "id:version" -> {preview, full}
    this.nextTransfer = 1;
  }

  static key(id, version) {
    return `${id}:${version}`;
  }

  // The {preview, full} promises of a layer; asks the kernel the first time.
  request(id, version, withPreview) {
    const key = Transfers.key(id, version);
    let entry = this.layers.get(key);
    if (!entry) {
      entry = { id, version, preview: withPreview ? deferred() : null, full: deferred(), started: performance.now() };
      this.layers.set(key, entry);
      const transfer = `${Date.now().toString(36)}-${this.nextTransfer++}`;
      entry.transfer = transfer;
      this.model.send({ type: "fetch", layer: id, version, preview: withPreview, transfer });
    }
    return entry;
  }

  // Forget layers no longer wanted (their bytes stay only where Papaya holds them).
  retain(keys) {
    for (const [key, entry] of this.layers) {
      if (!keys.has(key)) {
        for (const part of [entry.preview, entry.full]) {
          if (part && !part.done) {
            part.reject(new GoneError(`layer ${key} was replaced`));
          }
        }
        this.layers.delete(key);
      }
    }
  }

  receive(msg, buffers) {
    if (!msg || (msg.type !== "chunk" && msg.type !== "gone")) {
      return false;
    }
    const entry = this.layers.get(Transfers.key(msg.layer, msg.version));
    if (!entry || entry.transfer !== msg.transfer) {
      return true; // another page's transfer, or one this page no longer wants
    }
    if (msg.type === "gone") {
      for (const part of [entry.preview, entry.full]) {
        if (part && !part.done) {
          part.reject(new GoneError(`layer ${msg.layer} is gone`));
        }
      }
      this.layers.delete(Transfers.key(msg.layer, msg.version));
      return true;
    }
    // Acknowledge every chunk of this page's transfer: the kernel sends a few ahead of these.
    const nbytes = (buffers || []).reduce((sum, view) => sum + view.byteLength, 0);
    this.model.send({ type: "ack", transfer: msg.transfer, bytes: nbytes });
    const part = entry[msg.part];
    if (!part || part.done) {
      return true;
    }
    if (!part.buffer) {
      try {
        part.buffer = new ArrayBuffer(msg.total);
      } catch (err) {
        part.done = true;
        part.reject(new Error(`the browser could not set aside ${mib(msg.total)} for this image (${err.message})`));
        return true;
      }
      Object.assign(part, { total: msg.total, axes: msg.axes, stride: msg.stride, part: msg.part });
    }
    const target = new Uint8Array(part.buffer);
    let offset = msg.offset;
    for (const view of buffers || []) {
      const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      if (msg.encoding === "bits") {
        unpackBits(bytes, target, offset, msg.voxels);
        offset += msg.voxels;
        part.received += msg.voxels;
      } else {
        target.set(bytes, offset);
        offset += bytes.byteLength;
        part.received += bytes.byteLength;
      }
    }
    if (part.received >= part.total) {
      part.done = true;
      part.resolve({ buffer: part.buffer, axes: part.axes, stride: part.stride, part: part.part });
      if (msg.part === "full" && entry.preview && !entry.preview.done) {
        entry.preview.done = true;
        entry.preview.resolve(null);
      }
    }
    return true;
  }
}

// A 0/1 mask travels packed, 8 voxels to a byte, least significant bit first.
function unpackBits(bytes, target, offset, voxels) {
  const whole = voxels >> 3;
  for (let n = 0, at = offset; n < whole; n += 1, at += 8) {
    const byte = bytes[n];
    if (byte === 0) {
      continue; // the buffer starts zeroed
    }
    target[at] = byte & 1;
    target[at + 1] = (byte >> 1) & 1;
    target[at + 2] = (byte >> 2) & 1;
    target[at + 3] = (byte >> 3) & 1;
    target[at + 4] = (byte >> 4) & 1;
    target[at + 5] = (byte >> 5) & 1;
    target[at + 6] = (byte >> 6) & 1;
    target[at + 7] = byte >> 7;
  }
  for (let bit = whole * 8; bit < voxels; bit += 1) {
    target[offset + bit] = (bytes[bit >> 3] >> (bit & 7)) & 1;
  }
}

function transfersOf(model) {
  const page = pageState();
  const id = model.get("_viewer_id");
  let transfers = page.transfers.get(id);
  if (!transfers) {
    transfers = new Transfers(model);
    page.transfers.set(id, transfers);
    model.on("msg:custom", (msg, buffers) => transfers.receive(msg, buffers));
  }
  return transfers;
}

function publishImage(buffer) {
  const page = pageState();
  page.images += 1;
  const name = `imagingPapayaImage${Date.now().toString(36)}_${page.images}`;
  window[name] = buffer;
  return name;
}

// ---------------------------------------------------------------------- geometry
// Papaya's internal index (x, y, z) -> the voxel index of the file it read.
function toNative(volume, coord) {
  const orientation = volume.header.orientation;
  const m = orientation.orientMat;
  const axes = orientation.orientation.substring(0, 3).toUpperCase();
  const reoriented = {
    X: coord.x * m[0][0] + m[0][3],
    Y: coord.y * m[1][1] + m[1][3],
    Z: coord.z * m[2][2] + m[2][3],
  };
  return [0, 1, 2].map((axis) => Math.round(reoriented[axes.charAt(axis)]));
}

// The voxel index of the file -> Papaya's internal index (x, y, z).
function toInternal(volume, native) {
  const orientation = volume.header.orientation;
  const m = orientation.orientMat;
  const axes = orientation.orientation.substring(0, 3).toUpperCase();
  const index = (letter) => native[axes.indexOf(letter)];
  // orientMat holds flips (+-1) and offsets on its diagonal, so it is its own inverse.
  return {
    x: index("X") * m[0][0] + m[0][3],
    y: index("Y") * m[1][1] + m[1][3],
    z: index("Z") * m[2][2] + m[2][3],
  };
}

function fileToVolume(geometry, native) {
  const ijk = [0, 0, 0];
  native.forEach((value, axis) => {
    const target = geometry.axes[axis];
    ijk[target] = Math.min(value * geometry.stride, geometry.shape[target] - 1);
  });
  return ijk;
}

function volumeToFile(geometry, ijk) {
  return geometry.axes.map((target) => Math.round(ijk[target] / geometry.stride));
}

// ---------------------------------------------------------------------- colours
function colorTableFor(papaya, settings) {
  const ColorTable = papaya.viewer.ColorTable;
  if (settings.colors) {
    const table = { name: `imaging-lab:${JSON.stringify(settings.colors)}`, data: settings.colors, gradation: true };
    ColorTable.addCustomLUT(table);
    return { name: table.name, table: new ColorTable(table.name, false, table) };
  }
  const name = settings.lut || "Grayscale";
  return { name, table: new ColorTable(name, false) };
}

function overlaySettings(model) {
  const settings = {};
  for (const key of ["name", "lut", "colors", "min", "max", "alpha"]) {
    settings[key] = model.get(key);
  }
  return settings;
}

function imageParams(papaya, settings) {
  const params = { lut: colorTableFor(papaya, settings).name };
  if (settings.min !== null && settings.min !== undefined && settings.max !== null && settings.max !== undefined) {
    params.min = settings.min;
    params.max = settings.max;
  }
  if (settings.alpha !== undefined) {
    params.alpha = settings.alpha;
  }
  return params;
}

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
    this.setStatus("empty");

    this.onChange = () => {
      this.prefetch();
      this.sync();
    };
    this.onBusy = () => this.showBusy();
    this.onNotice = () => this.showError();
    this.onMessage = (msg) => this.handleMessage(msg);
    for (const name of ["_volume", "_overlays", "window_min", "window_max", "_cursor", "main_view"]) {
      model.on(`change:${name}`, this.onChange);
    }
    model.on("change:busy", this.onBusy);
    model.on("change:busy_message", this.onBusy);
    model.on("change:_notice", this.onNotice);
    model.on("msg:custom", this.onMessage);

    this.onMouseDown = (event) => {
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

  // Build Papaya afresh on a base image and overlays ({settings, buffer}); resolves once drawn.
  // Also the browser-only reference of bench/bench_viewer.py, which calls it with bytes it fetched.
  rebuild(spec, base, overlays) {
    const started = performance.now();
    const geometry = { axes: base.axes, stride: base.stride, shape: spec.shape };
    return new Promise((resolve, reject) => {
      const names = [];
      const params = {
        kioskMode: !this.model.get("toolbar"),
        showControls: false,
        showControlBar: false,
        noNewFiles: true,
        fullScreenPadding: false,
        allowScroll: true,
        showOrientation: true,
        orthogonal: !spec.plane,
        mainView: spec.plane || this.model.get("main_view"),
        binaryImages: [],
        loadingComplete: () => {
          this.pendingLoad = null;
          names.forEach((name) => delete window[name]);
          if (!this.viewer) {
            reject(new Error("Papaya could not read the volume"));
            return;
          }
          this.geometry = geometry;
          this.hookContainer();
          this.appliedCursor = -1;
          this.loadMs = performance.now() - started;
          requestAnimationFrame(() => resolve(this.loadMs));
        },
      };
      const baseName = publishImage(base.buffer);
      names.push(baseName);
      params.binaryImages.push([baseName]);
      params[baseName] = { lut: "Grayscale" };
      for (const overlay of overlays) {
        const name = publishImage(overlay.buffer);
        names.push(name);
        params.binaryImages.push([name]);
        params[name] = imageParams(this.papaya, overlay.settings);
      }
      this.pendingLoad = { reject, names };
      const Container = this.papaya.Container;
      if (this.index === null) {
        const holder = window.jQuery('<div class="papaya"></div>');
        window.jQuery(this.frame).empty().append(holder);
        this.index = window.papayaContainers.length;
        Container.fillContainerHTML(holder, false, params);
        Container.buildContainer(holder, params);
      } else {
        Container.resetViewer(this.index, params);
      }
      this.width = Math.floor(this.frame.clientWidth);
    });
  }

  addOverlay(settings, buffer) {
    return new Promise((resolve, reject) => {
      const name = publishImage(buffer);
      this.pendingLoad = { reject, names: [name] };
      const params = {};
      params[name] = {
        ...imageParams(this.papaya, settings),
        loadingComplete: () => {
          this.pendingLoad = null;
          delete window[name];
          resolve();
        },
      };
      this.papaya.Container.addImage(this.index, [name], params);
    });
  }

  // Papaya drew an error instead of an image (it never calls loadingComplete then).
  papayaFailed(message) {
    const pending = this.pendingLoad;
    if (pending) {
      this.pendingLoad = null;
      pending.names.forEach((name) => delete window[name]);
      pending.reject(new Error(`Papaya could not read the image: ${message}`));
    }
  }

  // Papaya listens for the context menu on the whole document: keep it to the canvas so
  // JupyterLab's own menus still work.
  hookContainer() {
    const viewer = this.container.viewer;
    document.removeEventListener("contextmenu", viewer.listenerContextMenu, false);
    viewer.canvas.addEventListener("contextmenu", viewer.listenerContextMenu, false);
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

  // ------------------------------------------------------------------ Papaya -> Python
  // coordinateChanged fires two or three times per click and on every drag step:
  // send one "position" per animation frame, and one "click" when the button is released.
  coordinateChanged() {
    if (this.pressing) {
      this.movedWhilePressing = true;
    }
    if (this.positionScheduled) {
      return;
    }
    this.positionScheduled = true;
    requestAnimationFrame(() => {
      this.positionScheduled = false;
      this.sendPosition("position");
    });
  }

  sendPosition(kind) {
    const voxel = this.currentVoxel();
    if (!voxel) {
      return;
    }
    const key = voxel.ijk.join(",");
    if (kind === "position" && key === this.lastSent) {
      return;
    }
    this.lastSent = key;
    this.el.dataset.voxel = key;
    // `cursor`: the last goto from Python this page has applied, so Python can tell a report made
    // before its latest goto (and ignore it) from one made after.
    this.model.send({ type: kind, ijk: voxel.ijk, papaya_value: voxel.value, cursor: this.appliedCursor });
  }

  // Client (viewport) coordinates of voxel (i, j, k)'s centre on the main slice, or null.
  screenPointOf(ijk) {
    const viewer = this.viewer;
    if (!viewer || !this.geometry) {
      return null;
    }
    const internal = toInternal(viewer.volume, volumeToFile(this.geometry, ijk));
    const slice = viewer.mainImage;
    const Slice = this.papaya.viewer.ScreenSlice;
    const [across, down] = {
      [Slice.DIRECTION_AXIAL]: [internal.x, internal.y],
      [Slice.DIRECTION_CORONAL]: [internal.x, internal.z],
      [Slice.DIRECTION_SAGITTAL]: [internal.y, internal.z],
    }[slice.sliceDirection];
    // Papaya reads a click as whole page pixels minus its rounded canvas offset, and takes
    // floor((pixel - offset) / scale): return the middle whole pixel that maps to the voxel.
    viewer.updateOffsetRect();
    const t = slice.finalTransform;
    const middlePixel = (origin, offset, scale, index) => {
      const first = Math.ceil(offset + index * scale);
      const last = Math.max(first, Math.ceil(offset + (index + 1) * scale) - 1);
      return origin + Math.round((first + last) / 2);
    };
    return {
      x: middlePixel(viewer.canvasRect.left, t[0][2], t[0][0], across) - window.pageXOffset,
      y: middlePixel(viewer.canvasRect.top, t[1][2], t[1][1], down) - window.pageYOffset,
    };
  }

  // The voxel (i, j, k) under the crosshair and the base image's value there as Papaya reads it.
  currentVoxel() {
    const viewer = this.viewer;
    if (!viewer || !this.geometry) {
      return null;
    }
    const coord = viewer.currentCoord;
    const sizes = viewer.volume.header.voxelDimensions;
    return {
      ijk: fileToVolume(this.geometry, toNative(viewer.volume, coord)),
      value: viewer.volume.getVoxelAtMM(coord.x * sizes.xSize, coord.y * sizes.ySize, coord.z * sizes.zSize, 0, true),
    };
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

export default {
  initialize({ model }) {
    transfersOf(model); // hear chunks from the model's first moment, whichever view asks
  },
  render({ model, el }) {
    const view = new PapayaView(model, el);
    return () => view.destroy();
  },
};
