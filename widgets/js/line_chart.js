// LineChart front end: draws the series Python sends as an SVG line chart, redrawn on every change.
// Python owns the data (widgets/line_chart.py); this only scales, draws axes, lines, points and a legend.

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4b5563"];
const MARGIN = { top: 28, right: 12, bottom: 38, left: 48 };

function node(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.append(element);
  return element;
}

function extent(values, low, high) {
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  let min = low ?? (finite.length ? Math.min(...finite) : 0);
  let max = high ?? (finite.length ? Math.max(...finite) : 1);
  if (max <= min) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 0.5;
    min -= low === null || low === undefined ? pad : 0;
    max += pad;
  }
  return [min, max];
}

function niceStep(range, count) {
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

function ticks(min, max, count) {
  // round values (1, 2 or 5 times a power of ten) inside [min, max]
  const step = niceStep(max - min, count);
  const out = [];
  for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) {
    out.push(Number(value.toPrecision(12)));
  }
  return out;
}

function label(value) {
  const size = Math.abs(value);
  if (size !== 0 && (size < 0.01 || size >= 100000)) return value.toExponential(1);
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(3)));
}

function render({ model, el }) {
  el.classList.add("imaging-line-chart");

  function draw() {
    const width = model.get("width");
    const height = model.get("height");
    const series = model.get("series");
    el.replaceChildren();
    const svg = node("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" }, el);
    node("text", { x: MARGIN.left, y: 16, class: "title" }, svg).textContent = model.get("title");
    const xs = series.flatMap((s) => s.x);
    const ys = series.flatMap((s) => s.y);
    const [x0, x1] = extent(xs, model.get("x_min"), model.get("x_max"));
    const [y0, y1] = extent(ys, model.get("y_min"), model.get("y_max"));
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const sx = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
    const sy = (y) => MARGIN.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
    node("rect", { x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH, class: "frame" }, svg);
    for (const t of ticks(y0, y1, 4)) {
      node("line", { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: sy(t), y2: sy(t), class: "grid" }, svg);
      const text = node("text", { x: MARGIN.left - 4, y: sy(t) + 4, class: "tick", "text-anchor": "end" }, svg);
      text.textContent = label(t);
    }
    for (const t of ticks(x0, x1, 4)) {
      const text = node("text", { x: sx(t), y: MARGIN.top + plotH + 14, class: "tick", "text-anchor": "middle" }, svg);
      text.textContent = label(t);
    }
    const xLabel = node("text", { x: MARGIN.left + plotW / 2, y: height - 6, class: "axis", "text-anchor": "middle" }, svg);
    xLabel.textContent = model.get("x_label");
    const yLabel = node("text", { x: 12, y: MARGIN.top + plotH / 2, class: "axis", "text-anchor": "middle" }, svg);
    yLabel.setAttribute("transform", `rotate(-90 12 ${MARGIN.top + plotH / 2})`);
    yLabel.textContent = model.get("y_label");
    if (model.get("diagonal")) {
      node("line", { x1: sx(x0), y1: sy(y0), x2: sx(x1), y2: sy(y1), class: "diagonal" }, svg);
    }
    let legendY = MARGIN.top + 12;
    series.forEach((s, index) => {
      const colour = s.color || PALETTE[index % PALETTE.length];
      const points = s.x
        .map((x, i) => [x, s.y[i]])
        .filter(([x, y]) => typeof x === "number" && typeof y === "number" && Number.isFinite(y));
      if (points.length) {
        const path = points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
        node("path", { d: path, stroke: colour, class: "line", "stroke-dasharray": s.dash ? "5 3" : "none" }, svg);
        if (model.get("markers")) {
          for (const [x, y] of points) node("circle", { cx: sx(x), cy: sy(y), r: 2.5, fill: colour }, svg);
        }
      }
      const item = node("text", { x: MARGIN.left + plotW - 6, y: legendY, class: "legend", "text-anchor": "end" }, svg);
      item.setAttribute("fill", colour);
      item.textContent = s.name;
      legendY += 13;
    });
    if (!series.some((s) => s.x.length)) {
      const empty = node("text", { x: MARGIN.left + plotW / 2, y: MARGIN.top + plotH / 2, class: "empty" }, svg);
      empty.setAttribute("text-anchor", "middle");
      empty.textContent = model.get("empty_message");
    }
  }

  for (const name of ["series", "title", "x_label", "y_label", "x_min", "x_max", "y_min", "y_max", "width", "height"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}

export default { render };
