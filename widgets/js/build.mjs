// Build the PapayaViewer front end: widgets/static/papaya_widget.js and .css.
//
// A plain Node script with no dependencies beyond node_modules/papaya-viewer (npm ci):
// it embeds Papaya's "nodicom" release (jQuery included, no network needed) as a string
// that the widget evaluates once per page, concatenates the front end's files (one ES
// module: they share its top-level names, and only the last one exports), and appends
// Papaya's CSS to the widget's. Run with `npm run build`.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const require = createRequire(join(root, "package.json"));
const papayaDir = dirname(require.resolve("papaya-viewer/package.json"));
const papayaPackage = JSON.parse(readFileSync(join(papayaDir, "package.json"), "utf8"));
const release = join(papayaDir, "release", "current", "nodicom");
const outDir = join(here, "..", "static");

const papayaSource = readFileSync(join(release, "papaya.js"), "utf8");
const papayaCss = readFileSync(join(release, "papaya.css"), "utf8");
const papayaLicense = readFileSync(join(papayaDir, "LICENSE"), "utf8");
// In dependency order: each file uses names of the files before it.
const WIDGET_FILES = [
  "papaya_loader.js",
  "papaya_transfers.js",
  "papaya_geometry.js",
  "papaya_masks.js",
  "papaya_edit.js",
  "papaya_view.js",
  "papaya_view_parts.js",
  "papaya_widget.js",
];
const widgetSource = WIDGET_FILES.map((name) => `// ---- ${name}\n${readFileSync(join(here, name), "utf8")}`).join("\n");
const widgetCss = readFileSync(join(here, "papaya_widget.css"), "utf8");

const licenseComment = `/*! Papaya ${papayaPackage.version} (npm papaya-viewer), embedded below.\n${papayaLicense
  .replace(/\*\//g, "* /")
  .trim()}\n*/`;

mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, "papaya_widget.js"),
  `${licenseComment}\nconst PAPAYA_VERSION = ${JSON.stringify(papayaPackage.version)};\n` +
    `const PAPAYA_SOURCE = ${JSON.stringify(papayaSource)};\n\n${widgetSource}`,
);
writeFileSync(join(outDir, "papaya_widget.css"), `${licenseComment}\n${papayaCss}\n\n${widgetCss}`);
console.log(`wrote ${join(outDir, "papaya_widget.js")} (Papaya ${papayaPackage.version}) and papaya_widget.css`);
