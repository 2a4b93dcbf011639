// Layers in transit: the page asks the kernel for the layers it lacks and gathers their chunks.
//
// Images are *layers* (the base volume, then one per overlay child model), each with an
// id and a version. A page asks the kernel for a layer it lacks ({type: "fetch"}); the
// kernel answers with NIfTI bytes in chunks of a few MiB (a few ahead of the page's
// acknowledgements, taking turns between layers), copied once into one
// ArrayBuffer that Papaya reads in place (named on `window`, as Papaya requires); a 0/1
// mask comes packed one bit per voxel and is unpacked into it. A large volume comes as a
// downsampled preview first. Chunks arrive on the viewer's own model; its views on one
// page share the transfers. An edited mask's chunks carry the `revision` of its voxels.

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

  // Fetch a layer again, as the kernel holds it now (an edited mask that fell out of step).
  refetch(id, version) {
    this.retain(new Set([...this.layers.keys()].filter((key) => key !== Transfers.key(id, version))));
    return this.request(id, version, false);
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
      Object.assign(part, {
        total: msg.total,
        axes: msg.axes,
        stride: msg.stride,
        part: msg.part,
        revision: msg.revision || 0,
      });
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
      // `value`: what the promise gives, for code that needs it at once (an edited mask's revision).
      part.value = { buffer: part.buffer, axes: part.axes, stride: part.stride, part: part.part, revision: part.revision };
      part.resolve(part.value);
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

