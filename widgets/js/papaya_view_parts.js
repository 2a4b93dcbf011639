// Two parts of PapayaView, added to its prototype: building Papaya, and positions back to Python.
//
// Positions go back to Python as the volume's own voxel indices (i, j, k) (see
// papaya_geometry.js).

Object.assign(PapayaView.prototype, {
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
  },

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
  },

  // Papaya drew an error instead of an image (it never calls loadingComplete then).
  papayaFailed(message) {
    const pending = this.pendingLoad;
    if (pending) {
      this.pendingLoad = null;
      pending.names.forEach((name) => delete window[name]);
      pending.reject(new Error(`Papaya could not read the image: ${message}`));
    }
  },

  // Papaya listens for the context menu on the whole document: keep it to the canvas so
  // JupyterLab's own menus still work.
  hookContainer() {
    const viewer = this.container.viewer;
    document.removeEventListener("contextmenu", viewer.listenerContextMenu, false);
    viewer.canvas.addEventListener("contextmenu", viewer.listenerContextMenu, false);
  },
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
  },

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
  },

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
  },

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
  },
});
