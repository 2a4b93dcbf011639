// RecordTable front end: draws the rows Python sends, reports header and row clicks.
// Sorting and filtering happen in Python (widgets/record_table.py); this only renders.

function formatCell(value, format) {
  if (value === null || value === undefined || value === "") return "";
  if (format === "percent" && typeof value === "number") return `${(100 * value).toFixed(1)} %`;
  if (format === "number" && typeof value === "number") return value.toLocaleString();
  return String(value);
}

function render({ model, el }) {
  el.classList.add("imaging-record-table");
  const table = document.createElement("table");
  const head = document.createElement("thead");
  const body = document.createElement("tbody");
  table.append(head, body);
  const empty = document.createElement("div");
  empty.className = "imaging-record-table-empty";
  el.append(table, empty);

  function draw() {
    const columns = model.get("columns");
    const rows = model.get("rows");
    const key = model.get("key");
    const sortBy = model.get("sort_by");
    const ascending = model.get("ascending");
    const selected = model.get("selected");
    head.replaceChildren();
    body.replaceChildren();
    const headRow = document.createElement("tr");
    for (const column of columns) {
      const th = document.createElement("th");
      th.dataset.column = column.name;
      th.textContent = column.label + (column.name === sortBy ? (ascending ? " ▲" : " ▼") : "");
      th.title = `sort by ${column.label}`;
      th.addEventListener("click", () => {
        if (model.get("sort_by") === column.name) {
          model.set("ascending", !model.get("ascending"));
        } else {
          model.set("sort_by", column.name);
          model.set("ascending", true);
        }
        model.save_changes();
      });
      headRow.append(th);
    }
    head.append(headRow);
    for (const row of rows) {
      const tr = document.createElement("tr");
      tr.dataset.key = row[key];
      if (row[key] === selected) tr.classList.add("selected");
      for (const column of columns) {
        const td = document.createElement("td");
        td.dataset.column = column.name;
        td.textContent = formatCell(row[column.name], column.format);
        tr.append(td);
      }
      tr.addEventListener("click", () => {
        model.set("selected", row[key]);
        model.save_changes();
      });
      body.append(tr);
    }
    empty.textContent = rows.length ? "" : model.get("empty_message");
  }

  for (const name of ["columns", "rows", "key", "sort_by", "ascending", "selected", "empty_message"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}

export default { render };
