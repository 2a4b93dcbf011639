// The edit mode of one view: its toolbar, keyboard shortcuts, brush footprint and cursor, strokes.
//
// In edit mode (the model's `edit_overlay` names a shown 0/1 mask overlay) a press on the
// main slice paints instead of moving the crosshair; the other slices still navigate, and
// the wheel changes slices. The brush paints every voxel whose centre lies within
// brush_mm / 2 of the brush centre, in millimetres with the volume's own voxel spacing
// (anisotropic voxels honoured), on the current slice and, with a depth of n, on the n
// slices each side (a ball cut to ±n slices). Dabs are placed one voxel apart along the
// pointer's path, so a fast stroke leaves no gaps. Fill and interpolation are computed by
// Python on the real voxels (see widgets/papaya_edit.py) and come back as undoable patches.
//
// Shortcuts, while the pointer is over the viewer or it has the focus (never while typing
// in a text field): B brush, E eraser, F fill, I interpolate between painted slices,
// [ and ] brush size, { and } depth (±n slices), Ctrl+Z undo, Ctrl+Shift+Z or Ctrl+Y
// redo (Cmd on a Mac).

const POINTER_TOOLS = ["brush", "eraser", "fill"];
const SHORTCUTS = { b: "brush", e: "eraser", f: "fill", i: "interpolate", "[": "smaller", "]": "larger" };
Object.assign(SHORTCUTS, { "{": "shallower", "}": "deeper" });
const TOOL_TITLES = {
  brush: "Brush (B)",
  eraser: "Eraser (E)",
  fill: "Fill: grow a region from a click (F)",
  interpolate: "Interpolate the slices between painted slices (I)",
  smaller: "Smaller brush ([)",
  larger: "Larger brush (])",
  shallower: "Fewer slices (Shift+[)",
  deeper: "More slices: a 3D brush (Shift+])",
  undo: "Undo (Ctrl+Z)",
  redo: "Redo (Ctrl+Shift+Z)",
};

class EditTools {
  constructor(view) {
    this.view = view;
    this.model = view.model;
    this.masks = masksOf(view.model);
    this.attached = new Map(); // layer id -> MaskState this view draws
    this.state = null; // the edited overlay's MaskState, once this view shows it
    this.stroke = null;
    this.hovered = false;
    this.footprintCache = { key: null, offsets: null };
    this.drawScheduled = false;
    this.buildToolbar();
    this.cursor = document.createElement("canvas");
    this.cursor.className = "imaging-papaya-brush";
    view.el.append(this.cursor);

    this.onKeyDown = (event) => this.keyDown(event);
    this.onHover = (event) => this.drawCursor(event);
    this.onEnter = () => (this.hovered = true);
    this.onLeave = () => {
      this.hovered = false;
      this.clearCursor();
    };
    this.onStrokeMove = (event) => this.strokeMove(event);
    this.onStrokeEnd = (event) => this.strokeEnd(event);
    window.addEventListener("keydown", this.onKeyDown, true);
    view.frame.addEventListener("mousemove", this.onHover);
    view.el.addEventListener("mouseenter", this.onEnter);
    view.el.addEventListener("mouseleave", this.onLeave);
  }

  buildToolbar() {
    const bar = document.createElement("div");
    bar.className = "imaging-papaya-edit";
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", "Mask editing");
    const make = (tag, className, text) => {
      const node = document.createElement(tag);
      node.className = className;
      node.textContent = text || "";
      return node;
    };
    const button = (action, text) => {
      const node = make("button", "imaging-papaya-edit-button", text);
      node.type = "button";
      node.dataset.action = action;
      node.title = TOOL_TITLES[action];
      node.addEventListener("click", () => this.run(action));
      return node;
    };
    this.name = make("span", "imaging-papaya-edit-name");
    this.size = make("span", "imaging-papaya-edit-size");
    this.depth = make("span", "imaging-papaya-edit-depth");
    this.status = make("span", "imaging-papaya-edit-status");
    this.toolButtons = POINTER_TOOLS.map((tool) => button(tool, tool[0].toUpperCase() + tool.slice(1)));
    bar.append(this.name, ...this.toolButtons, button("interpolate", "Interpolate"));
    bar.append(make("span", "imaging-papaya-edit-label", "Size"), button("smaller", "−"), this.size);
    bar.append(button("larger", "+"), make("span", "imaging-papaya-edit-label", "Depth"), button("shallower", "−"));
    bar.append(this.depth, button("deeper", "+"), button("undo", "Undo"), button("redo", "Redo"), this.status);
    this.bar = bar;
    this.view.el.insertBefore(bar, this.view.frame);
  }

  // ------------------------------------------------------------------ state
  // Draw every shown editable overlay from its shared mask (patches reach it in any mode).
  sync() {
    const view = this.view;
    const viewer = view.viewer;
    for (const child of viewer && view.shown.part === "full" ? view.watched : []) {
      const key = Transfers.key(child.get("layer_id"), child.get("version"));
      const index = view.shown.overlays.indexOf(key);
      const entry = view.transfers.layers.get(key);
      const data = entry && entry.full.value;
      const state = child.get("editable") && index >= 0 && data ? this.masks.state(child.get("layer_id"), child.get("version")) : null;
      if (state && state.attach(view, viewer.screenVolumes[index + 1], data)) {
        this.attached.set(state.id, state);
      }
    }
    for (const [id, state] of this.attached) {
      if (this.masks.states.get(id) !== state) {
        state.detach(view);
        this.attached.delete(id);
      }
    }
    const state = this.attached.get(this.model.get("edit_overlay")) || null;
    this.state = state && state.voxels ? state : null;
    this.update();
  }

  active() {
    const view = this.view;
    return Boolean(this.state && view.viewer && view.geometry && view.el.dataset.status === "ready");
  }

  maskChanged() {
    this.update();
    if (this.drawScheduled) {
      return;
    }
    this.drawScheduled = true;
    requestAnimationFrame(() => {
      this.drawScheduled = false;
      if (this.view.viewer) {
        this.view.viewer.drawViewer(true, false);
      }
    });
  }

  update() {
    const el = this.view.el;
    const editing = Boolean(this.model.get("edit_overlay"));
    this.bar.style.display = editing ? "flex" : "none";
    el.dataset.edit = this.active() ? "on" : editing ? "loading" : "off";
    if (editing) {
      el.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab: these keys are the viewer's
      el.tabIndex = -1;
    } else {
      el.removeAttribute("data-lm-suppress-shortcuts");
      this.clearCursor();
    }
    const child = [...this.view.watched].find((model) => model.get("layer_id") === this.model.get("edit_overlay"));
    this.name.textContent = child ? `Editing ${child.get("name")}` : "Editing";
    for (const node of this.toolButtons) {
      node.setAttribute("aria-pressed", String(node.dataset.action === this.model.get("edit_tool")));
    }
    this.size.textContent = `${this.model.get("brush_mm").toFixed(1)} mm`;
    this.depth.textContent = `±${this.model.get("brush_depth")}`;
    const status = this.state ? this.state.status() : { sync: "loading", revision: -1, undo: 0, redo: 0, notice: "" };
    const words = { synced: "in step with Python", sending: "syncing…", working: "working…", resyncing: "reloading…" };
    this.status.textContent = [words[status.sync] || "loading…", status.notice].filter((text) => text).join(" · ");
    this.status.classList.toggle("imaging-papaya-edit-notice", Boolean(status.notice));
    Object.assign(el.dataset, {
      editSync: status.sync,
      editRevision: String(status.revision),
      editUndo: String(status.undo),
      editRedo: String(status.redo),
    });
  }

  setTrait(name, value) {
    this.model.set(name, value);
    this.model.save_changes();
    this.update();
  }

  run(action) {
    const state = this.state;
    const limits = this.model.get("_edit_limits") || {};
    if (POINTER_TOOLS.includes(action)) {
      this.setTrait("edit_tool", action);
    } else if (action === "smaller" || action === "larger") {
      const spacing = this.model.get("_volume").spacing || [1, 1, 1];
      const size = this.model.get("brush_mm") * (action === "larger" ? 1.25 : 0.8);
      const bounded = Math.min(limits.max_brush_mm || 200, Math.max(Math.min(...spacing), size));
      this.setTrait("brush_mm", Math.round(bounded * 10) / 10);
    } else if (action === "shallower" || action === "deeper") {
      const depth = this.model.get("brush_depth") + (action === "deeper" ? 1 : -1);
      this.setTrait("brush_depth", Math.max(0, Math.min(limits.max_depth || 32, depth)));
    } else if (state && this.active() && (action === "undo" || action === "redo")) {
      state.step(action === "undo");
    } else if (state && this.active() && action === "interpolate") {
      state.request("interpolate", { axis: this.planeAxes().w });
    }
  }

  keyDown(event) {
    const target = event.target;
    const typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName || ""));
    if (typing || !this.active() || !(this.hovered || this.view.el.contains(document.activeElement))) {
      return;
    }
    const key = event.key || "";
    const command = event.ctrlKey || event.metaKey;
    let action = null;
    if (command && !event.altKey && key.toLowerCase() === "z") {
      action = event.shiftKey ? "redo" : "undo";
    } else if (command && !event.altKey && key.toLowerCase() === "y") {
      action = "redo";
    } else if (!command && !event.altKey) {
      action = SHORTCUTS[key.toLowerCase()] || null;
    }
    if (action) {
      event.preventDefault();
      event.stopPropagation(); // neither Papaya nor JupyterLab's shortcuts see it
      this.run(action);
    }
  }

  // ------------------------------------------------------------------ geometry
  // The volume axes across (u) and down (v) the main slice, and through it (w).
  planeAxes() {
    const viewer = this.view.viewer;
    const Slice = this.view.papaya.viewer.ScreenSlice;
    const direction = viewer.mainImage.sliceDirection;
    let letters = ["Y", "Z", "X"];
    if (direction === Slice.DIRECTION_AXIAL) {
      letters = ["X", "Y", "Z"];
    } else if (direction === Slice.DIRECTION_CORONAL) {
      letters = ["X", "Z", "Y"];
    }
    const order = viewer.volume.header.orientation.orientation.substring(0, 3).toUpperCase();
    const [u, v, w] = letters.map((letter) => this.view.geometry.axes[order.indexOf(letter)]);
    return { u, v, w };
  }

  // The voxel (i, j, k) under the pointer on the main slice, or null.
  voxelAt(event) {
    const viewer = this.view.viewer;
    viewer.updateOffsetRect();
    const slice = viewer.mainImage;
    const t = slice.finalTransform;
    const x = event.pageX - viewer.canvasRect.left;
    const y = event.pageY - viewer.canvasRect.top;
    const across = Math.floor((x - t[0][2]) / t[0][0]);
    const down = Math.floor((y - t[1][2]) / t[1][1]);
    if (!(across >= 0 && down >= 0 && across < slice.xDim && down < slice.yDim)) {
      return null;
    }
    const coord = viewer.convertScreenToImageCoordinate(x, y, slice);
    return { ijk: fileToVolume(this.view.geometry, toNative(viewer.volume, coord)), across, down };
  }

  // Offsets (di, dj, dk) of the voxels whose centres lie within the brush of the centre voxel's.
  footprint(axes) {
    const spacing = this.model.get("_volume").spacing;
    const radius = this.model.get("brush_mm") / 2;
    const key = [radius, this.model.get("brush_depth"), axes.u, axes.v, axes.w, spacing].join();
    if (this.footprintCache.key !== key) {
      const reach = spacing.map((size) => Math.floor(radius / size));
      reach[axes.w] = Math.min(reach[axes.w], this.model.get("brush_depth"));
      const offsets = [];
      for (let dk = -reach[2]; dk <= reach[2]; dk += 1) {
        for (let dj = -reach[1]; dj <= reach[1]; dj += 1) {
          for (let di = -reach[0]; di <= reach[0]; di += 1) {
            const squared = (di * spacing[0]) ** 2 + (dj * spacing[1]) ** 2 + (dk * spacing[2]) ** 2;
            if (squared <= radius * radius + 1e-9) {
              offsets.push(di, dj, dk);
            }
          }
        }
      }
      this.footprintCache = { key, offsets: Int32Array.from(offsets) };
    }
    return this.footprintCache.offsets;
  }

  dab(centre) {
    const [ni, nj, nk] = this.view.geometry.shape;
    const offsets = this.stroke.offsets;
    for (let n = 0; n < offsets.length; n += 3) {
      const i = centre[0] + offsets[n];
      const j = centre[1] + offsets[n + 1];
      const k = centre[2] + offsets[n + 2];
      if (i >= 0 && j >= 0 && k >= 0 && i < ni && j < nj && k < nk) {
        this.state.paint(i + ni * (j + nj * k));
      }
    }
  }

  // ------------------------------------------------------------------ strokes
  // A press on the main slice in edit mode: start a stroke, or ask for a fill. True if it was one.
  mouseDown(event) {
    if (event.button !== 0 || event.altKey || event.ctrlKey || event.metaKey || !this.active()) {
      return false;
    }
    const under = this.voxelAt(event);
    if (!under) {
      return false; // the other slices still navigate
    }
    event.preventDefault();
    event.stopPropagation();
    this.view.el.focus({ preventScroll: true });
    const tool = this.model.get("edit_tool");
    const axes = this.planeAxes();
    if (tool === "fill") {
      this.state.request("fill", { ijk: under.ijk, axis: axes.w, depth: this.model.get("brush_depth") });
      return true;
    }
    if (this.state.beginStroke(tool)) {
      this.stroke = { last: under.ijk, offsets: this.footprint(axes), state: this.state };
      this.dab(under.ijk);
      this.state.changed();
      window.addEventListener("mousemove", this.onStrokeMove, true);
      window.addEventListener("mouseup", this.onStrokeEnd, true);
    }
    return true;
  }

  strokeMove(event) {
    event.preventDefault();
    event.stopPropagation();
    const under = this.voxelAt(event);
    if (under && this.stroke) {
      const last = this.stroke.last;
      const target = under.ijk;
      const steps = Math.max(...target.map((value, axis) => Math.abs(value - last[axis])));
      for (let step = 1; step <= steps; step += 1) {
        this.dab(last.map((value, axis) => Math.round(value + ((target[axis] - value) * step) / steps)));
      }
      this.stroke.last = target;
      this.state.changed();
    }
    this.drawCursor(event);
  }

  strokeEnd(event) {
    window.removeEventListener("mousemove", this.onStrokeMove, true);
    window.removeEventListener("mouseup", this.onStrokeEnd, true);
    event.stopPropagation();
    const stroke = this.stroke;
    this.stroke = null;
    if (stroke) {
      stroke.state.endStroke(); // sends the changed voxels at once
      stroke.state.changed();
    }
  }

  // ------------------------------------------------------------------ cursor
  clearCursor() {
    this.cursor.style.display = "none";
  }

  // The brush's outline (its radius in mm along each screen axis) around the voxel under the pointer.
  drawCursor(event) {
    const tool = this.model.get("edit_tool");
    const under = this.active() && tool !== "fill" ? this.voxelAt(event) : null;
    if (!under) {
      this.clearCursor();
      return;
    }
    const viewer = this.view.viewer;
    const box = viewer.canvas.getBoundingClientRect();
    const host = this.view.el.getBoundingClientRect();
    Object.assign(this.cursor.style, {
      display: "block",
      left: `${box.left - host.left}px`,
      top: `${box.top - host.top}px`,
      width: `${box.width}px`,
      height: `${box.height}px`,
    });
    if (this.cursor.width !== viewer.canvas.width || this.cursor.height !== viewer.canvas.height) {
      this.cursor.width = viewer.canvas.width;
      this.cursor.height = viewer.canvas.height;
    }
    const t = viewer.mainImage.finalTransform;
    const spacing = this.model.get("_volume").spacing;
    const axes = this.planeAxes();
    const radius = this.model.get("brush_mm") / 2;
    const context = this.cursor.getContext("2d");
    context.clearRect(0, 0, this.cursor.width, this.cursor.height);
    context.beginPath();
    context.ellipse(
      t[0][2] + (under.across + 0.5) * t[0][0],
      t[1][2] + (under.down + 0.5) * t[1][1],
      Math.max(1, (radius / spacing[axes.u]) * Math.abs(t[0][0])),
      Math.max(1, (radius / spacing[axes.v]) * Math.abs(t[1][1])),
      0,
      0,
      2 * Math.PI,
    );
    context.setLineDash(tool === "eraser" ? [4, 3] : []);
    context.lineWidth = 1.5;
    context.strokeStyle = tool === "eraser" ? "#ffffff" : "#ffeb3b";
    context.stroke();
  }

  destroy() {
    window.removeEventListener("keydown", this.onKeyDown, true);
    window.removeEventListener("mousemove", this.onStrokeMove, true);
    window.removeEventListener("mouseup", this.onStrokeEnd, true);
    for (const state of this.attached.values()) {
      state.detach(this.view);
    }
  }
}
