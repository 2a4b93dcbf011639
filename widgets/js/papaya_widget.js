// Front end of widgets.PapayaViewer: an anywidget view that embeds the Papaya viewer.
//
// `build.mjs` prepends `const PAPAYA_SOURCE = "<papaya.js>";` (the npm papaya-viewer
// "nodicom" release, jQuery included) and writes widgets/static/papaya_widget.js.
//
// Papaya is a global script: it is evaluated once per page with an indirect eval while
// `define`/`require` are hidden (RequireJS pages would otherwise capture its jQuery).
// Volumes arrive as uncompressed NIfTI bytes in binary buffers (DataViews); Papaya only
// accepts real ArrayBuffers named on `window`, so each image is copied and published
// under a unique name. Positions go back to Python as the volume's own voxel indices
// (i, j, k): Papaya shows the voxel grid reoriented to its display orientation, and
// `toNative`/`toInternal` undo and redo that reorientation with Papaya's own matrices.

/* global PAPAYA_SOURCE, PAPAYA_VERSION */

const PAGE_KEY = "__imagingLabPapaya";
let imageCounter = 0;

function loadPapaya() {
  const page = (window[PAGE_KEY] = window[PAGE_KEY] || {});
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
  page.papaya = papaya;
  return papaya;
}

function toArrayBuffer(data) {
  if (data instanceof ArrayBuffer) {
    return data;
  }
  // ipywidgets hands over DataViews (or typed arrays), which Papaya silently rejects.
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
}

function publishImage(data) {
  imageCounter += 1;
  const name = `imagingPapayaImage${Date.now().toString(36)}_${imageCounter}`;
  window[name] = toArrayBuffer(data);
  return name;
}

// Papaya's internal index (x, y, z) -> the NIfTI voxel index (i, j, k) of the file it read.
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

// The NIfTI voxel index (i, j, k) -> Papaya's internal index (x, y, z).
function toInternal(volume, ijk) {
  const orientation = volume.header.orientation;
  const m = orientation.orientMat;
  const axes = orientation.orientation.substring(0, 3).toUpperCase();
  const native = (letter) => ijk[axes.indexOf(letter)];
  // orientMat holds flips (+-1) and offsets on its diagonal, so it is its own inverse.
  return {
    x: native("X") * m[0][0] + m[0][3],
    y: native("Y") * m[1][1] + m[1][3],
    z: native("Z") * m[2][2] + m[2][3],
  };
}

function customTableName(spec) {
  return `imaging-lab:${JSON.stringify(spec)}`;
}

function colorTableFor(papaya, spec, baseImage) {
  const ColorTable = papaya.viewer.ColorTable;
  if (spec.colors) {
    const table = { name: customTableName(spec.colors), data: spec.colors, gradation: true };
    ColorTable.addCustomLUT(table);
    return { name: table.name, table: new ColorTable(table.name, baseImage, table) };
  }
  const name = spec.lut || "Grayscale";
  return { name, table: new ColorTable(name, baseImage) };
}

function readyImageParams(spec) {
  const params = {};
  if (spec.min !== null && spec.min !== undefined && spec.max !== null && spec.max !== undefined) {
    params.min = spec.min;
    params.max = spec.max;
  }
  if (spec.alpha !== undefined) {
    params.alpha = spec.alpha;
  }
  return params;
}

class PapayaView {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.papaya = loadPapaya();
    this.index = null; // this view's slot in Papaya's global `papayaContainers`
    this.loadedBase = null; // `_volume_id` Papaya shows
    this.loadedOverlays = []; // overlay ids in Papaya's screen-volume order (after the base)
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
    el.append(this.frame, this.busy, this.error);
    el.imagingPapaya = this; // for tests and debugging from the page
    this.setStatus("empty");

    this.onChange = () => this.sync();
    this.onBusy = () => this.showBusy();
    this.onMessage = (msg) => this.handleMessage(msg);
    model.on("change:_volume_id", this.onChange);
    model.on("change:_overlays", this.onChange);
    model.on("change:window_min", this.onChange);
    model.on("change:window_max", this.onChange);
    model.on("change:_cursor", this.onChange);
    model.on("change:busy", this.onBusy);
    model.on("change:busy_message", this.onBusy);
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
    this.frame.addEventListener("mousedown", this.onMouseDown, true);
    window.addEventListener("mouseup", this.onMouseUp, true);

    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.frame);
    this.showBusy();
    this.sync();
  }

  setStatus(status, detail) {
    this.el.dataset.status = status;
    this.error.textContent = status === "error" ? detail : "";
    this.showBusy();
  }

  showBusy() {
    const loading = this.el.dataset.status === "loading";
    const busy = this.model.get("busy") || loading;
    const label = this.model.get("busy") ? this.model.get("busy_message") : "Loading image…";
    this.busy.style.display = busy ? "flex" : "none";
    this.busy.querySelector(".imaging-papaya-busy-label").textContent = label;
    this.el.dataset.busy = busy ? "true" : "false";
  }

  get container() {
    return this.index === null ? null : window.papayaContainers[this.index];
  }

  get viewer() {
    const container = this.container;
    return container && container.viewer.initialized ? container.viewer : null;
  }

  resize() {
    const width = Math.floor(this.frame.clientWidth);
    const container = this.container;
    if (!container || width === this.width) {
      return;
    }
    this.width = width;
    if (width > 0) {
      container.resizeViewerComponents(true);
    }
  }

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
        await this.syncImages();
        this.applyDisplay();
        this.applyCursor();
      } while (this.again);
    } catch (err) {
      console.error("PapayaViewer:", err);
      this.setStatus("error", String(err && err.message ? err.message : err));
      this.model.send({ type: "error", message: String(err && err.message ? err.message : err) });
    } finally {
      this.syncing = false;
    }
  }

  async syncImages() {
    const volumeId = this.model.get("_volume_id");
    const overlays = this.model.get("_overlays") || [];
    if (!volumeId) {
      return;
    }
    const wanted = overlays.map((overlay) => overlay.id);
    if (volumeId !== this.loadedBase) {
      await this.rebuild(volumeId, overlays);
      return;
    }
    const stale = this.loadedOverlays.filter((id) => !wanted.includes(id));
    for (const id of stale) {
      this.papaya.Container.removeImage(this.index, this.loadedOverlays.indexOf(id) + 1);
      this.loadedOverlays.splice(this.loadedOverlays.indexOf(id), 1);
    }
    const missing = overlays.filter((overlay) => !this.loadedOverlays.includes(overlay.id));
    if (missing.length) {
      this.setStatus("loading");
      const started = performance.now();
      for (const overlay of missing) {
        await this.addOverlay(overlay);
      }
      await this.painted(started);
    }
  }

  imageParams(overlays, loadingComplete) {
    const params = {
      kioskMode: !this.model.get("toolbar"),
      showControls: false,
      showControlBar: false,
      noNewFiles: true,
      fullScreenPadding: false,
      allowScroll: true,
      showOrientation: true,
      mainView: this.model.get("main_view"),
      binaryImages: [],
      loadingComplete,
    };
    const base = publishImage(this.model.get("_volume"));
    params.binaryImages.push([base]);
    params[base] = { lut: "Grayscale" };
    const names = [base];
    for (const overlay of overlays) {
      const name = publishImage(overlay.data);
      params.binaryImages.push([name]);
      params[name] = { ...readyImageParams(overlay), lut: colorTableFor(this.papaya, overlay, false).name };
      names.push(name);
    }
    return { params, names };
  }

  rebuild(volumeId, overlays) {
    this.setStatus("loading");
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const { params, names } = this.imageParams(overlays, () => {
        names.forEach((name) => delete window[name]);
        const viewer = this.viewer;
        if (!viewer) {
          reject(new Error(this.container.display.errorMessage || "Papaya could not read the volume"));
          return;
        }
        this.loadedBase = volumeId;
        this.loadedOverlays = overlays.map((overlay) => overlay.id);
        this.hookContainer();
        this.appliedCursor = -1;
        this.painted(started).then(resolve);
      });
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

  addOverlay(overlay) {
    return new Promise((resolve) => {
      const name = publishImage(overlay.data);
      const imageParams = {};
      imageParams[name] = {
        ...readyImageParams(overlay),
        lut: colorTableFor(this.papaya, overlay, false).name,
        loadingComplete: () => {
          delete window[name];
          this.loadedOverlays.push(overlay.id);
          resolve();
        },
      };
      this.papaya.Container.addImage(this.index, [name], imageParams);
    });
  }

  // Papaya listens for the context menu on the whole document; keep it to the canvas so
  // JupyterLab's own menus still work, and hear coordinate changes (there is no click event).
  hookContainer() {
    const container = this.container;
    const viewer = container.viewer;
    document.removeEventListener("contextmenu", viewer.listenerContextMenu, false);
    viewer.canvas.addEventListener("contextmenu", viewer.listenerContextMenu, false);
    if (container.imagingLabHooked) {
      return;
    }
    container.imagingLabHooked = true;
    const original = container.coordinateChanged;
    container.coordinateChanged = (changed) => {
      original.call(container, changed);
      if (this.pressing) {
        this.movedWhilePressing = true;
      }
      this.schedulePosition();
    };
  }

  // coordinateChanged fires two or three times per click and on every drag step:
  // send one "position" per animation frame, and one "click" when the button is released.
  schedulePosition() {
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
    const viewer = this.viewer;
    if (!viewer) {
      return;
    }
    const { ijk, value } = this.currentVoxel();
    const key = ijk.join(",");
    if (kind === "position" && key === this.lastSent) {
      return;
    }
    this.lastSent = key;
    this.el.dataset.voxel = key;
    this.model.send({ type: kind, ijk, papaya_value: value });
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
    const overlays = this.model.get("_overlays") || [];
    overlays.forEach((overlay) => {
      const screen = viewer.screenVolumes[this.loadedOverlays.indexOf(overlay.id) + 1];
      if (!screen) {
        return;
      }
      const { name, table } = colorTableFor(this.papaya, overlay, false);
      if (screen.lutName !== name) {
        screen.colorTable = table;
        screen.lutName = name;
        screen.updateIcon();
        screen.updateColorBar();
      }
      if (overlay.min !== null && overlay.max !== null) {
        screen.setScreenRange(overlay.min, overlay.max);
      }
      screen.alpha = overlay.alpha;
    });
    viewer.drawViewer(true, false);
    this.el.dataset.overlays = String(this.loadedOverlays.length);
  }

  applyCursor() {
    const viewer = this.viewer;
    const cursor = this.model.get("_cursor");
    if (!viewer || !cursor || !cursor.ijk || cursor.seq === this.appliedCursor) {
      return;
    }
    this.appliedCursor = cursor.seq;
    // A mouse press leaves a timer that re-applies the pressed position a little later:
    // cancel it, or a goto right after a click would be undone.
    viewer.resetUpdateTimer(null);
    viewer.gotoCoordinate(toInternal(viewer.volume, cursor.ijk), true);
    this.lastSent = toNative(viewer.volume, viewer.currentCoord).join(",");
    this.el.dataset.voxel = this.lastSent;
  }

  painted(started) {
    return new Promise((resolve) => {
      requestAnimationFrame(() => {
        const elapsed = performance.now() - started;
        this.setStatus("ready");
        this.el.dataset.volumeId = this.loadedBase;
        this.el.dataset.overlays = String(this.loadedOverlays.length);
        this.model.send({
          type: "painted",
          volume_id: this.loadedBase,
          overlays: this.loadedOverlays.slice(),
          load_ms: elapsed,
          width: this.viewer ? this.viewer.canvas.width : 0,
        });
        resolve();
      });
    });
  }

  // Client (viewport) coordinates of voxel (i, j, k)'s centre on the main slice, or null.
  screenPointOf(ijk) {
    const viewer = this.viewer;
    if (!viewer) {
      return null;
    }
    const internal = toInternal(viewer.volume, ijk);
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
    if (!viewer) {
      return null;
    }
    const coord = viewer.currentCoord;
    const sizes = viewer.volume.header.voxelDimensions;
    return {
      ijk: toNative(viewer.volume, coord),
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
    this.model.off("change:_volume_id", this.onChange);
    this.model.off("change:_overlays", this.onChange);
    this.model.off("change:window_min", this.onChange);
    this.model.off("change:window_max", this.onChange);
    this.model.off("change:_cursor", this.onChange);
    this.model.off("change:busy", this.onBusy);
    this.model.off("change:busy_message", this.onBusy);
    this.model.off("msg:custom", this.onMessage);
    const container = this.container;
    if (container && container.viewer) {
      // Drop the document-level key listeners and the image data of a removed view.
      container.viewer.resetViewer();
    }
  }
}

export default {
  render({ model, el }) {
    const view = new PapayaView(model, el);
    return () => view.destroy();
  },
};
