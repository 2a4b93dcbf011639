// DownloadButton front end: asks Python for the file on click, saves what comes back.
// The bytes travel over the kernel's authenticated websocket, never through a file URL.

function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-button imaging-download-button";
  const status = document.createElement("span");
  status.className = "imaging-download-status";
  el.append(button, status);

  function draw() {
    button.textContent = `⬇ ${model.get("description")}`;
    button.title = model.get("filename");
  }
  model.on("change:description", draw);
  model.on("change:filename", draw);
  draw();

  button.addEventListener("click", () => {
    button.disabled = true;
    status.textContent = " preparing…";
    model.send({ type: "download" });
  });

  model.on("msg:custom", (message, buffers) => {
    button.disabled = false;
    if (message.type === "error") {
      status.textContent = ` ${message.error}`;
      return;
    }
    if (message.type !== "file") return;
    status.textContent = "";
    const blob = new Blob([buffers[0]], { type: message.mime });
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = message.filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  });
}

export default { render };
