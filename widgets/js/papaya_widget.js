// Front end of widgets.PapayaViewer: an anywidget view that embeds the Papaya viewer.
//
// The last of the files build.mjs concatenates (see papaya_loader.js): the module's export.

export default {
  initialize({ model }) {
    transfersOf(model); // hear chunks from the model's first moment, whichever view asks
  },
  render({ model, el }) {
    const view = new PapayaView(model, el);
    return () => view.destroy();
  },
};
