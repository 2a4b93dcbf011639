// Edited masks on this page: their voxels, revisions, undo and redo, and patches to and from Python.
//
// One MaskState per editable overlay layer of a viewer model, shared by the model's views
// on this page: Papaya's voxel array of the first view that shows the overlay becomes the
// mask's, and every other view draws that same array. Strokes paint into it directly;
// only the voxels that changed travel to Python, as a *patch* (see widgets/papaya_edit.py
// and widgets/papaya_patches.py): runs of flat NIfTI-order indices (i fastest, which is
// the file's own order for an editable mask) and one value per run, as a uint32 and a
// uint8 buffer, in parts under 4 MiB and at most SEND_WINDOW bytes ahead of Python's
// acknowledgements.
//
// Revisions keep page and kernel in step. A patch goes from `base` to `base + 1`; this
// page counts its own patches at once (painting never waits), and Python confirms each
// (`patched`) or refuses it (`refused`: someone else changed the mask first). Patches from
// Python apply only on the revision they were made for, and every voxel they name must
// change. Anything else (a refusal, a gap, a foreign edit, a voxel already at its new
// value) makes the page fetch the mask again as Python holds it (`resync`), dropping the
// undo history, which no longer describes that mask.

const UNDO_STEPS = 100;
const RUN_BYTES = 9; // start and length (uint32 each) and the value (uint8)
const RUNS_PER_PART = Math.floor((4 * 1024 ** 2) / RUN_BYTES); // widgets.papaya_patches.MAX_RUNS_PER_PART
const SEND_WINDOW = 16 * 1024 ** 2;
const NIFTI_HEADER_BYTES = 352;
const MASK_MESSAGES = new Set(["patch", "patched", "refused", "received", "tool-failed", "reloaded"]);

// Runs of increasing flat indices: {runs: Uint32Array of (start, length) pairs, values: Uint8Array}.
function runsOf(indices, count, valueAt) {
  const starts = [];
  const values = [];
  let run = -1;
  for (let n = 0; n < count; n += 1) {
    const index = indices[n];
    const value = valueAt(n);
    if (run >= 0 && index === starts[run] + starts[run + 1] && value === values[run >> 1]) {
      starts[run + 1] += 1;
    } else {
      starts.push(index, 1);
      values.push(value);
      run = starts.length - 2;
    }
  }
  return { runs: Uint32Array.from(starts), values: Uint8Array.from(values) };
}

// A growable list of flat indices (a stroke's changed voxels).
class IndexList {
  constructor() {
    this.items = new Uint32Array(4096);
    this.count = 0;
  }

  push(index) {
    if (this.count === this.items.length) {
      const grown = new Uint32Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    this.items[this.count] = index;
    this.count += 1;
  }

  sorted() {
    return this.items.subarray(0, this.count).sort();
  }
}

class MaskState {
  constructor(masks, id, version) {
    this.masks = masks;
    this.id = id;
    this.version = version;
    this.voxels = null;
    this.revision = -1;
    this.phase = "loading"; // "ready" once the voxels are here, "resyncing" while fetched again
    this.incoming = []; // whole patches from Python waiting for the voxels
    this.partial = null; // parts of a patch from Python still arriving
    this.undo = [];
    this.redo = [];
    this.unconfirmed = new Map(); // this page's patches Python has not confirmed: revision -> bytes in flight
    this.newest = -1; // the newest revision Python announced for another page's edit
    this.outbox = [];
    this.sentBytes = 0;
    this.stroke = null;
    this.busy = null; // {request, kind}: a fill or interpolation Python is working on
    this.notice = "";
    this.views = new Set();
  }

  // ---------------------------------------------------------------- views
  // A view shows this mask in Papaya: the first one lends its voxel array, the others draw it.
  attach(view, screen, data) {
    const data8 = screen.volume.imageData.data;
    if (!this.voxels) {
      if (!(data8 instanceof Uint8Array) || String(data.axes) !== "0,1,2") {
        return false; // not yet the editable encoding: Python sends a new version
      }
      this.voxels = data8;
      this.revision = data.revision;
      this.phase = "ready";
      if (this.newest > this.revision) {
        this.resync("the mask was changed in another page while it loaded: it was reloaded");
      } else {
        this.drain();
      }
    } else if (data8 !== this.voxels) {
      screen.volume.imageData.data = this.voxels;
    }
    this.views.add(view);
    return true;
  }

  detach(view) {
    this.views.delete(view);
  }

  changed() {
    for (const view of this.views) {
      view.edit.maskChanged();
    }
  }

  status() {
    const sending = this.unconfirmed.size > 0 || this.outbox.length > 0;
    const sync =
      this.phase !== "ready" ? this.phase : this.busy ? "working" : this.stroke || sending ? "sending" : "synced";
    return { sync, revision: this.revision, undo: this.undo.length, redo: this.redo.length, notice: this.notice };
  }

  editable() {
    return this.phase === "ready" && !this.busy;
  }

  // ---------------------------------------------------------------- local edits
  beginStroke(tool) {
    if (!this.editable()) {
      return false;
    }
    this.stroke = { tool, value: tool === "eraser" ? 0 : 1, changed: new IndexList() };
    this.notice = "";
    return true;
  }

  paint(index) {
    const stroke = this.stroke;
    if (this.voxels[index] !== stroke.value) {
      this.voxels[index] = stroke.value;
      stroke.changed.push(index);
    }
  }

  endStroke() {
    const stroke = this.stroke;
    this.stroke = null;
    if (!stroke || stroke.changed.count === 0) {
      return;
    }
    const indices = stroke.changed.sorted();
    const { runs, values } = runsOf(indices, indices.length, () => stroke.value);
    this.record({ runs, values, tool: stroke.tool });
    this.send(runs, values, stroke.tool);
  }

  record(entry) {
    this.undo.push(entry);
    if (this.undo.length > UNDO_STEPS) {
      this.undo.shift();
    }
    this.redo = [];
  }

  // Undo (or redo) the last edit: set its voxels back (or again) where they still hold its result.
  step(backwards) {
    const from = backwards ? this.undo : this.redo;
    if (!this.editable() || !from.length) {
      return;
    }
    const entry = from.pop();
    const changed = new IndexList();
    const targets = [];
    for (let r = 0; r < entry.values.length; r += 1) {
      const target = backwards ? 1 - entry.values[r] : entry.values[r];
      for (let index = entry.runs[2 * r], end = index + entry.runs[2 * r + 1]; index < end; index += 1) {
        if (this.voxels[index] !== target) {
          this.voxels[index] = target;
          changed.push(index);
          targets.push(target);
        }
      }
    }
    (backwards ? this.redo : this.undo).push(entry);
    if (changed.count) {
      const { runs, values } = runsOf(changed.items, changed.count, (n) => targets[n]);
      this.send(runs, values, entry.tool);
    }
    this.changed();
  }

  // Ask Python for a fill or an interpolation; its patch comes back to this page, undoable.
  request(kind, fields) {
    if (!this.editable()) {
      return;
    }
    const request = this.masks.nextRequest++;
    this.busy = { request, kind };
    this.notice = "";
    this.masks.send({ type: kind, layer: this.id, version: this.version, base: this.revision, request, ...fields });
    this.changed();
  }

  // ---------------------------------------------------------------- to Python
  send(runs, values, tool) {
    const base = this.revision;
    this.revision += 1;
    const count = values.length;
    const parts = Math.max(1, Math.ceil(count / RUNS_PER_PART));
    if (count * RUN_BYTES > this.masks.limits().patch_bytes) {
      this.resync("that edit is too large to send: the mask was reloaded");
      return;
    }
    this.unconfirmed.set(this.revision, 0);
    for (let part = 0; part < parts; part += 1) {
      const first = part * RUNS_PER_PART;
      const last = Math.min(count, first + RUNS_PER_PART);
      this.outbox.push({
        content: {
          type: "patch", layer: this.id, version: this.version, base, revision: this.revision, tool,
          part, parts, runs: last - first,
        }, // prettier-ignore
        buffers: [runs.slice(2 * first, 2 * last).buffer, values.slice(first, last).buffer],
        bytes: (last - first) * RUN_BYTES,
        revision: this.revision,
      });
    }
    this.pump();
  }

  pump() {
    while (this.outbox.length && this.sentBytes < SEND_WINDOW) {
      const { content, buffers, bytes, revision } = this.outbox.shift();
      this.sentBytes += bytes;
      this.unconfirmed.set(revision, (this.unconfirmed.get(revision) || 0) + bytes);
      this.masks.send(content, buffers);
    }
    this.changed();
  }

  // ---------------------------------------------------------------- from Python
  receive(msg, buffers) {
    const mine = msg.origin === this.masks.origin;
    if (msg.type === "patch") {
      this.receivePart(msg, buffers);
    } else if (msg.type === "patched" && mine) {
      this.acknowledged(msg.revision, this.unconfirmed.get(msg.revision) || 0);
      this.unconfirmed.delete(msg.revision);
      this.pump();
    } else if (msg.type === "patched") {
      this.newest = Math.max(this.newest, msg.revision);
      if (this.phase === "ready" && msg.revision > this.revision) {
        this.resync("the mask was changed in another page: it was reloaded");
      }
    } else if (msg.type === "received" && mine && this.unconfirmed.has(msg.revision)) {
      this.acknowledged(msg.revision, RUNS_PER_PART * RUN_BYTES); // every part but the last is full
      this.pump();
    } else if (msg.type === "refused" && mine && this.phase === "ready") {
      this.resync(`Python refused the edit (${msg.reason}): the mask was reloaded`);
    } else if ((msg.type === "tool-failed" || msg.type === "reloaded") && mine && this.busy) {
      this.busy = null;
      this.notice = msg.type === "tool-failed" ? msg.message : "";
      this.changed();
    }
  }

  // Python has `bytes` more of this page's patch `revision`: they leave the send window.
  acknowledged(revision, bytes) {
    this.sentBytes = Math.max(0, this.sentBytes - bytes);
    if (this.unconfirmed.has(revision)) {
      this.unconfirmed.set(revision, Math.max(0, this.unconfirmed.get(revision) - bytes));
    }
  }

  receivePart(msg, buffers) {
    if (msg.part === 0) {
      this.partial = { msg, runs: [], values: [] };
    }
    if (!this.partial || this.partial.msg.revision !== msg.revision) {
      return;
    }
    const [runs, values] = buffers || [];
    this.partial.runs.push(new Uint32Array(runs.buffer.slice(runs.byteOffset, runs.byteOffset + runs.byteLength)));
    this.partial.values.push(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    if (msg.part < msg.parts - 1) {
      return;
    }
    const concat = (Type, pieces) => {
      const all = new Type(pieces.reduce((sum, piece) => sum + piece.length, 0));
      pieces.reduce((at, piece) => (all.set(piece, at), at + piece.length), 0);
      return all;
    };
    const patch = { ...this.partial.msg, runs: concat(Uint32Array, this.partial.runs) };
    patch.values = concat(Uint8Array, this.partial.values);
    this.partial = null;
    if (this.phase !== "ready") {
      this.incoming.push(patch);
    } else {
      this.apply(patch);
    }
  }

  apply(patch) {
    if (patch.base !== this.revision) {
      this.resync("the mask fell out of step with Python: it was reloaded");
      return;
    }
    for (let r = 0; r < patch.values.length; r += 1) {
      const value = patch.values[r];
      for (let index = patch.runs[2 * r], end = index + patch.runs[2 * r + 1]; index < end; index += 1) {
        if (this.voxels[index] === value) {
          this.resync("the mask differed from Python's: it was reloaded");
          return;
        }
        this.voxels[index] = value;
      }
    }
    this.revision = patch.revision;
    if (patch.origin === this.masks.origin && this.busy && patch.request === this.busy.request) {
      this.busy = null;
      if (patch.values.length) {
        this.record({ runs: patch.runs, values: patch.values, tool: patch.tool });
      } else {
        this.notice = `${patch.tool}: nothing to change`;
      }
    }
    this.changed();
  }

  // Apply the patches that waited, in order: older ones are in the voxels already.
  drain() {
    const waiting = this.incoming;
    this.incoming = [];
    for (const patch of waiting) {
      if (this.phase === "ready" && patch.base >= this.revision) {
        this.apply(patch);
      }
    }
  }

  // Fetch the mask again as Python holds it, and go on from there.
  resync(reason) {
    this.phase = "resyncing";
    this.notice = reason;
    Object.assign(this, { undo: [], redo: [], outbox: [], sentBytes: 0, stroke: null, busy: null, partial: null });
    this.unconfirmed.clear();
    this.changed();
    const entry = this.masks.transfers.refetch(this.id, this.version);
    entry.full.promise.then(
      (data) => {
        this.voxels.set(new Uint8Array(data.buffer, NIFTI_HEADER_BYTES, this.voxels.length));
        this.revision = data.revision;
        this.phase = "ready";
        this.drain();
        this.changed();
      },
      () => {}, // the mask was replaced or removed meanwhile: its new version is fetched anew
    );
  }
}

// The edited masks of one viewer model on this page, and the messages about them.
class EditedMasks {
  constructor(model, transfers) {
    this.model = model;
    this.transfers = transfers;
    this.origin = `page-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    this.states = new Map(); // layer id -> MaskState (of the newest version seen)
    this.nextRequest = 1;
  }

  limits() {
    return this.model.get("_edit_limits") || {};
  }

  state(id, version) {
    let state = this.states.get(id);
    if (!state || state.version < version) {
      state = new MaskState(this, id, version);
      this.states.set(id, state);
    }
    return state.version === version ? state : null;
  }

  retain(ids) {
    for (const id of [...this.states.keys()]) {
      if (!ids.has(id)) {
        this.states.delete(id);
      }
    }
  }

  send(content, buffers) {
    this.model.send({ ...content, origin: this.origin }, undefined, buffers);
  }

  receive(msg, buffers) {
    if (!msg || !MASK_MESSAGES.has(msg.type) || typeof msg.layer !== "string") {
      return;
    }
    const state = msg.type === "patch" ? this.state(msg.layer, msg.version) : this.states.get(msg.layer);
    if (state) {
      state.receive(msg, buffers);
    }
  }
}

function masksOf(model) {
  const page = pageState();
  const id = model.get("_viewer_id");
  let masks = page.masks.get(id);
  if (!masks) {
    masks = new EditedMasks(model, transfersOf(model));
    page.masks.set(id, masks);
    model.on("msg:custom", (msg, buffers) => masks.receive(msg, buffers));
  }
  return masks;
}
