// Papaya in the page: loaded once per page, hooked to find the widget view of each container.
//
// `build.mjs` prepends `const PAPAYA_SOURCE = "<papaya.js>";` (the npm papaya-viewer
// "nodicom" release, jQuery included) and concatenates this file with the others of the
// front end (papaya_transfers.js, papaya_geometry.js, papaya_masks.js, papaya_edit.js,
// papaya_view.js, papaya_view_parts.js, papaya_widget.js) into widgets/static/papaya_widget.js,
// one ES module: the files share its top-level names and only papaya_widget.js exports.
//
// Papaya is a global script: it is evaluated once per page with an indirect eval while
// `define`/`require` are hidden (RequireJS pages would otherwise capture its jQuery).

/* global PAPAYA_SOURCE */

const PAGE_KEY = "__imagingLabPapaya";
const MODEL_PREFIX = "IPY_MODEL_";

function pageState() {
  return (window[PAGE_KEY] = window[PAGE_KEY] || { papaya: null, transfers: new Map(), masks: new Map(), images: 0 });
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

