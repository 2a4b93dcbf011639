// FileDrop front end: drop files or folders (or choose them), send their bytes to Python.
// Folders are walked recursively. The total is checked against max_bytes before anything
// is read; then each file is read and sent in chunks of chunk_bytes (under the server's
// stock 10 MiB websocket limit), at most IN_FLIGHT chunks ahead of Python's acknowledgements.

const IN_FLIGHT = 4;

async function entryFiles(entry, prefix) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, name: prefix + file.name }];
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map((child) => entryFiles(child, `${prefix}${entry.name}/`)));
  return nested.flat();
}

async function droppedFiles(dataTransfer) {
  const entries = Array.from(dataTransfer.items || [])
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter((entry) => entry);
  if (entries.length) {
    return (await Promise.all(entries.map((entry) => entryFiles(entry, "")))).flat();
  }
  return Array.from(dataTransfer.files).map((file) => ({ file, name: file.name }));
}

function formatBytes(bytes) {
  const mib = bytes / (1024 * 1024);
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GiB` : `${mib.toFixed(1)} MiB`;
}

function render({ model, el }) {
  el.classList.add("imaging-file-drop");
  const zone = document.createElement("div");
  zone.className = "imaging-drop-zone";
  const message = document.createElement("div");
  message.className = "imaging-drop-message";
  const pickFiles = document.createElement("input");
  pickFiles.type = "file";
  pickFiles.multiple = true;
  pickFiles.className = "imaging-pick-files";
  const pickFolder = document.createElement("input");
  pickFolder.type = "file";
  pickFolder.webkitdirectory = true;
  pickFolder.className = "imaging-pick-folder";
  const filesButton = document.createElement("button");
  filesButton.className = "jupyter-button";
  filesButton.textContent = "Choose files…";
  const folderButton = document.createElement("button");
  folderButton.className = "jupyter-button";
  folderButton.textContent = "Choose a folder…";
  for (const input of [pickFiles, pickFolder]) input.style.display = "none";
  const buttons = document.createElement("div");
  buttons.append(filesButton, folderButton);
  const status = document.createElement("div");
  status.className = "imaging-drop-status";
  zone.append(message, buttons, pickFiles, pickFolder);
  el.append(zone, status);

  function draw() {
    message.textContent = `${model.get("prompt")} (up to ${formatBytes(model.get("max_bytes"))} per upload)`;
    status.textContent = model.get("status");
    zone.classList.toggle("busy", model.get("busy"));
  }
  for (const name of ["prompt", "max_bytes", "status", "busy"]) model.on(`change:${name}`, draw);
  draw();

  // The drop being sent: Python's acknowledgements and refusals wake whoever waits on it.
  let current = null;
  model.on("msg:custom", (msg) => {
    if (!current || !msg || msg.upload !== current.upload) return;
    if (msg.type === "ack") current.acked = msg.received;
    if (msg.type === "refused") current.failed = msg.reason;
    current.waiters.splice(0).forEach((wake) => wake());
  });
  function until(condition) {
    return new Promise((resolve) => {
      const check = () => (condition() ? resolve() : current.waiters.push(check));
      check();
    });
  }

  async function send(files) {
    if (!files.length || model.get("busy") || current) return;
    const total = files.reduce((sum, item) => sum + item.file.size, 0);
    if (total > model.get("max_bytes")) {
      status.textContent = `Refused: ${files.length} file(s) of ${formatBytes(total)} exceed the upload limit of ${formatBytes(model.get("max_bytes"))}.`;
      return;
    }
    const upload = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    current = { upload, acked: -1, failed: null, waiters: [] };
    try {
      status.textContent = `Sending ${files.length} file(s), ${formatBytes(total)}…`;
      model.send({ type: "start", upload, names: files.map((item) => item.name), sizes: files.map((item) => item.file.size) });
      await until(() => current.failed || current.acked >= 0);
      const chunk = model.get("chunk_bytes");
      let sent = 0;
      for (let index = 0; index < files.length && !current.failed; index += 1) {
        const file = files[index].file;
        for (let offset = 0; offset < file.size && !current.failed; offset += chunk) {
          await until(() => current.failed || sent - current.acked < IN_FLIGHT * chunk);
          if (current.failed) break;
          const buffer = await file.slice(offset, offset + chunk).arrayBuffer();
          model.send({ type: "chunk", upload, file: index, offset }, undefined, [buffer]);
          sent += buffer.byteLength;
          status.textContent = `Sending ${files.length} file(s): ${formatBytes(Math.max(current.acked, 0))} of ${formatBytes(total)}…`;
        }
      }
      await until(() => current.failed || current.acked >= sent);
      if (current.failed) {
        status.textContent = `Refused: ${current.failed}.`;
      } else {
        model.send({ type: "done", upload });
      }
    } finally {
      current = null;
    }
  }

  filesButton.addEventListener("click", () => pickFiles.click());
  folderButton.addEventListener("click", () => pickFolder.click());
  pickFiles.addEventListener("change", () => {
    send(Array.from(pickFiles.files).map((file) => ({ file, name: file.name })));
    pickFiles.value = "";
  });
  pickFolder.addEventListener("change", () => {
    send(Array.from(pickFolder.files).map((file) => ({ file, name: file.webkitRelativePath || file.name })));
    pickFolder.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    send(await droppedFiles(event.dataTransfer));
  });
}

export default { render };
