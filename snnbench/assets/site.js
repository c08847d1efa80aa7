// snnbench report: sortable, filterable tables and Plotly plots, offline (plotly-basic.min.js sits beside
// this file). The page state can also be set in the address, for links and for the browser test:
// index.html?sort=<column key>&desc=1&filter=<text>
"use strict";
window.snnbenchErrors = [];
window.addEventListener("error", (e) => {
  window.snnbenchErrors.push(String(e.message));
  document.body.dataset.errors = window.snnbenchErrors.join(" | ");
});

function cellValue(row, index) {
  const cell = row.cells[index];
  const v = cell.dataset.v;
  if (v === undefined) return cell.textContent.trim();
  return v === "" ? NaN : Number(v);
}

function sortTable(table, key, descending) {
  const heads = Array.from(table.tHead.rows[0].cells);
  const index = heads.findIndex((th) => th.dataset.key === key);
  if (index < 0) return;
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index), y = cellValue(b, index);
    const xMissing = typeof x === "number" && isNaN(x), yMissing = typeof y === "number" && isNaN(y);
    if (xMissing || yMissing) return xMissing - yMissing; // missing values last either way
    const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return descending ? -order : order;
  });
  rows.forEach((r) => body.appendChild(r));
  heads.forEach((th) => th.removeAttribute("aria-sort"));
  heads[index].setAttribute("aria-sort", descending ? "descending" : "ascending");
  table.dataset.sorted = key + (descending ? " desc" : " asc");
}

function filterTable(table, text) {
  const needle = text.trim().toLowerCase();
  let shown = 0;
  for (const row of table.tBodies[0].rows) {
    const match = !needle || row.textContent.toLowerCase().includes(needle);
    row.hidden = !match;
    shown += match;
  }
  table.dataset.shown = shown;
}

function setUpTables(params) {
  for (const table of document.querySelectorAll("table.sortable")) {
    for (const th of table.tHead.rows[0].cells) {
      if (!th.dataset.key) continue;
      th.tabIndex = 0;
      th.addEventListener("click", () => {
        const descending = table.dataset.sorted === th.dataset.key + " asc";
        sortTable(table, th.dataset.key, descending);
      });
    }
    const input = document.getElementById(table.dataset.filter);
    if (input) input.addEventListener("input", () => filterTable(table, input.value));
    if (params.get("sort")) sortTable(table, params.get("sort"), params.get("desc") === "1");
    if (params.get("filter") !== null && input) {
      input.value = params.get("filter");
      filterTable(table, input.value);
    }
  }
}

function drawPlots() {
  let drawn = 0;
  for (const spec of document.querySelectorAll("script.plot")) {
    const figure = JSON.parse(spec.textContent);
    const target = document.getElementById(spec.dataset.target);
    // the toolbar (mode bar) sits in the band the layout keeps free above the title: it hides nothing
    const config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
    Plotly.newPlot(target, figure.data, figure.layout, config);
    drawn += 1;
  }
  document.body.dataset.plots = drawn;
}

document.addEventListener("DOMContentLoaded", () => {
  setUpTables(new URLSearchParams(window.location.search));
  drawPlots();
});
