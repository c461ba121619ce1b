// The static attention explorer: draws precomputed attention weights with no kernel and no library.
// Python (companion/viz/static.py) writes the data as JSON next to this script; every control
// below only chooses which precomputed matrix to draw, so the page works offline, anywhere.
// Every control is a real form element (<select>, <input type=range>, <button>) with a label and an
// aria-label, so it is reached with Tab and operated with the arrow keys, Enter or Space; the
// details panel is a live region, so a screen reader announces what the new choice shows.
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function select(label, options, onChange) {
    var wrap = el("label", { "class": "cvx-control" }, label + " ");
    var s = el("select", { "data-control": label, "aria-label": label });
    options.forEach(function (o) { s.appendChild(el("option", { value: String(o[1]) }, o[0])); });
    s.addEventListener("change", function () { onChange(s.value); });
    wrap.appendChild(s);
    return { wrap: wrap, input: s };
  }

  function color(data, x) {
    var n = data.cmap.length - 1;
    return data.cmap[Math.max(0, Math.min(n, Math.round(x * n)))];
  }

  // One head's (T, T) matrix as a table: row i = query token, column j = key token.
  function matrixTable(data, m, labels, query, big, onPick, caption) {
    var t = el("table", { "class": big ? "cvx-matrix" : "cvx-matrix cvx-small", "aria-label": caption });
    var size = big ? (m.length > 40 ? 8 : 18) : (m.length > 40 ? 3 : 7);  // long inputs: smaller cells
    if (big) {
      var head = el("tr");
      head.appendChild(el("th"));
      labels.forEach(function (lab) { head.appendChild(el("th", { "class": "cvx-col" }, lab)); });
      t.appendChild(head);
    }
    m.forEach(function (row, i) {
      var tr = el("tr", i === query ? { "class": "cvx-query" } : {});
      if (big) {
        // a real button: Tab reaches it, Enter or Space picks this query (a click on the cell works too)
        var th = el("th", { "class": "cvx-row", title: "click: what token " + i + " attends to" });
        th.appendChild(el("button", { type: "button", "class": "cvx-pick", "data-row": String(i),
          "aria-label": "query " + i + ": " + labels[i] + ", show what it attends to",
          "aria-pressed": i === query ? "true" : "false" }, labels[i]));
        th.addEventListener("click", function () { onPick(i); });
        tr.appendChild(th);
      }
      row.forEach(function (x, j) {
        var td = el("td", { "data-w": String(x), title: labels[i] + " \u2192 " + labels[j] + ": " + x });
        td.style.background = color(data, x);
        td.style.width = td.style.height = size + "px";
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    return t;
  }

  function bars(title, items) {
    var box = el("div", { "class": "cvx-bars" });
    box.appendChild(el("div", { "class": "cvx-bars-title" }, title));
    items.forEach(function (it) {
      var line = el("div", { "class": "cvx-bar-line" });
      line.appendChild(el("code", {}, it[0]));
      var bar = el("span", { "class": "cvx-bar" });
      bar.style.width = Math.round(120 * it[1]) + "px";
      line.appendChild(bar);
      line.appendChild(el("span", {}, it[1].toFixed(3)));
      box.appendChild(line);
    });
    return box;
  }

  function init(root) {
    var data = JSON.parse(root.querySelector("script.cvx-data").textContent);
    var state = { text: 0, layer: 0, head: 0, snap: data.snapshots.length - 1, query: null };
    var controls = el("div", { "class": "cvx-controls" });
    var view = el("div", { "class": "cvx-view", "data-role": "heatmap" });
    var side = el("div", { "class": "cvx-side", "data-role": "details", "aria-live": "polite" });
    var querySel;

    function labels() { return data.labels[state.text]; }

    function fillQueries() {
      querySel.input.innerHTML = "";
      labels().forEach(function (lab, i) {
        querySel.input.appendChild(el("option", { value: String(i) }, i + ": " + lab));
      });
      state.query = labels().length - 1;
      querySel.input.value = String(state.query);
    }

    function draw() {
      var W = data.weights[state.snap][state.text][state.layer];  // (n_head, T, T)
      view.innerHTML = "";
      side.innerHTML = "";
      var q = state.query, T = labels().length;
      view.setAttribute("data-state", [state.snap, state.text, state.layer, state.head, q].join(","));
      var row;
      if (state.head === "all") {
        var grid = el("div", { "class": "cvx-grid" });
        W.forEach(function (m, h) {
          var cell = el("div", { "class": "cvx-grid-cell" });
          cell.appendChild(el("div", {}, "head " + h));
          cell.appendChild(matrixTable(data, m, labels(), q, false, null,
            "attention weights of layer " + state.layer + ", head " + h));
          grid.appendChild(cell);
        });
        view.appendChild(grid);
        row = W[0][q].map(function (_, j) {
          return W.reduce(function (s, m) { return s + m[q][j]; }, 0) / W.length;
        });
      } else {
        view.appendChild(matrixTable(data, W[state.head], labels(), q, true, function (i) {
          state.query = i; querySel.input.value = String(i); draw();
          var again = view.querySelector("button[data-row='" + i + "']");  // the table was redrawn:
          if (again) again.focus();                                         // keep the keyboard's place
        }, "attention weights of layer " + state.layer + ", head " + state.head +
           ": row i is the query token, column j the key token it attends to"));
        row = W[state.head][q];
      }
      var order = row.map(function (x, j) { return [x, j]; })
        .sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; }).slice(0, Math.min(5, T));
      side.appendChild(el("div", { "class": "cvx-bars-title" }, "query " + q + ": " + labels()[q]));
      side.appendChild(bars("attends most to" + (state.head === "all" ? " (mean over heads)" : ""),
        order.map(function (p) { return [p[1] + ": " + labels()[p[1]], p[0]]; })));
      side.appendChild(bars("next token predicted", data.preds[state.snap][state.text][q]));
    }

    if (data.texts.length > 1) {
      controls.appendChild(select("input", data.texts.map(function (t, i) { return [t, i]; }), function (v) {
        state.text = +v; fillQueries(); draw();
      }).wrap);
    }
    controls.appendChild(select("layer", data.layers.map(function (l) { return ["" + l, l]; }), function (v) {
      state.layer = +v; draw();
    }).wrap);
    var heads = [];
    for (var h = 0; h < data.n_head; h++) heads.push(["" + h, h]);
    heads.push(["all", "all"]);
    controls.appendChild(select("head", heads, function (v) { state.head = v === "all" ? "all" : +v; draw(); }).wrap);
    querySel = select("query token", [], function (v) { state.query = +v; draw(); });
    controls.appendChild(querySel.wrap);
    if (data.snapshots.length > 1) {
      var wrap = el("label", { "class": "cvx-control" }, "training step ");
      var slider = el("input", { type: "range", min: "0", max: String(data.snapshots.length - 1),
        value: String(state.snap), "data-control": "snapshot", "aria-label": "training step",
        "aria-valuetext": data.snapshots[state.snap] });
      var shown = el("span", { "class": "cvx-step" }, data.snapshots[state.snap]);
      slider.addEventListener("input", function () {
        state.snap = +slider.value; shown.textContent = data.snapshots[state.snap];
        slider.setAttribute("aria-valuetext", data.snapshots[state.snap]); draw();
      });
      wrap.appendChild(slider);
      wrap.appendChild(shown);
      controls.appendChild(wrap);
    }
    var body = el("div", { "class": "cvx-body" });
    body.appendChild(view);
    body.appendChild(side);
    root.appendChild(controls);
    root.appendChild(body);
    fillQueries();
    draw();
    root.setAttribute("data-cvx-ready", "1");
  }

  var roots = document.querySelectorAll("div.cvx-root:not([data-cvx-ready])");
  for (var i = 0; i < roots.length; i++) init(roots[i]);
})();
