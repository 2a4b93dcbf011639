// Where voxels are: between Papaya's display indices, the file it read and the volume's own (i, j, k).
//
// Papaya shows the voxel grid of the file reoriented to its display orientation; `toNative`
// and `toInternal` undo and redo that with Papaya's own matrices, then the file's axis
// order (a C-ordered array is sent as its transpose) and the preview's voxel step.
// Also the overlays' colour tables and Papaya's image parameters.

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

