/* eval/report_page.js: draws the report from the JSON in #report-data (written by
 * tal_eval_write_html): the mAP tables, PR curves, false positives by cause, mAP by GT length,
 * the diagnosis, training curves, and one timeline per video, drawn when it scrolls into view
 * (or all at once with #all in the address). Text from the input files only ever becomes text
 * nodes or attribute values, never markup. No network, no other file. */
(function () {
  'use strict';
  const started = performance.now();
  const D = JSON.parse(document.getElementById('report-data').textContent);
  const app = document.getElementById('app');
  const SVGNS = 'http://www.w3.org/2000/svg';
  const T = D.tiou.length;
  const C = D.classes.length;

  /* ------------------------------------------------------------------ small helpers ---- */
  function fill(e, attrs, kids) {
    for (const k in attrs || {})
      if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    for (const k of kids)
      if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  const h = (tag, attrs, ...kids) => fill(document.createElement(tag), attrs, kids);
  const s = (tag, attrs, ...kids) => fill(document.createElementNS(SVGNS, tag), attrs, kids);
  const pct = x => (x === null || x === undefined || isNaN(x)) ? '-' : (100 * x).toFixed(2);
  const num = (x, d) => (x === null || x === undefined) ? '-' : (+x).toFixed(d);
  const mean = a => a.reduce((u, v) => u + v, 0) / (a.length || 1);
  const tiouLabel = t => D.tiou[t].toFixed(2);

  const TAB10 = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
                 '#7f7f7f', '#bcbd22', '#17becf'];
  const classColour = c =>
    c < 10 ? TAB10[c] : 'hsl(' + ((c * 137.508) % 360).toFixed(1) + ',55%,45%)';
  /* scores: light yellow (low) to dark purple (high), so that strong detections stand out */
  const RAMP = [[253, 231, 37], [94, 201, 98], [33, 145, 140], [59, 82, 139], [68, 1, 84]];
  function rampColour(u) {
    u = Math.min(1, Math.max(0, u)) * (RAMP.length - 1);
    const i = Math.min(RAMP.length - 2, Math.floor(u)), f = u - i;
    const c = RAMP[i].map((a, k) => Math.round(a + f * (RAMP[i + 1][k] - a)));
    return 'rgb(' + c.join(',') + ')';
  }

  /* nice ticks over [lo, hi] */
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(m => m * p).find(v => v >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step)
      out.push(+v.toPrecision(12));
    return out;
  }

  /* A line chart: series = [{name, colour, xs, ys}] (null ys break the line); opts: width,
   * height, xLabel, yFormat, xFrom/xTo/yFrom/yTo (range at least), step (a step function: each
   * y holds up to its x, as the interpolated precision), xInteger (ticks on whole numbers). */
  function lineChart(series, opts) {
    const W = opts.width || 560, H = opts.height || 280, L = 56, R = 12, TOP = 12, B = 40;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const sr of series)
      sr.xs.forEach((x, i) => {
        const y = sr.ys[i];
        if (y === null || !isFinite(y)) return;
        x0 = Math.min(x0, x), x1 = Math.max(x1, x), y0 = Math.min(y0, y), y1 = Math.max(y1, y);
      });
    if (opts.xFrom !== undefined) x0 = Math.min(x0, opts.xFrom);
    if (opts.xTo !== undefined) x1 = Math.max(x1, opts.xTo);
    if (opts.yFrom !== undefined) y0 = Math.min(y0, opts.yFrom);
    if (opts.yTo !== undefined) y1 = Math.max(y1, opts.yTo);
    const svg = s('svg', {width: W, height: H, role: 'img'});
    if (!isFinite(x0)) {
      svg.append(s('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'tick'},
                   'no data'));
      return svg;
    }
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) y1 = y0 + (Math.abs(y0) || 1);
    const X = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const Y = y => TOP + (1 - (y - y0) / (y1 - y0)) * (H - TOP - B);
    for (const v of ticks(y0, y1, 5)) {
      svg.append(s('line', {x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: 'grid'}));
      svg.append(s('text', {x: L - 5, y: Y(v) + 4, 'text-anchor': 'end', class: 'tick'},
                   opts.yFormat ? opts.yFormat(v) : String(v)));
    }
    for (const v of ticks(x0, x1, 6).filter(v => !opts.xInteger || v === Math.round(v)))
      svg.append(s('text', {x: X(v), y: H - B + 15, 'text-anchor': 'middle', class: 'tick'},
                   String(v)));
    svg.append(s('path', {d: 'M' + L + ',' + TOP + 'V' + (H - B) + 'H' + (W - R), class: 'axis'}));
    svg.append(s('text', {x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle', class: 'tick'},
                 opts.xLabel || ''));
    for (const sr of series) {
      let d = '', pen = 'M';
      sr.xs.forEach((x, i) => {
        const y = sr.ys[i];
        if (y === null || !isFinite(y)) { pen = 'M'; return; }
        const px = X(x).toFixed(1), py = Y(y).toFixed(1);
        if (opts.step) d += (pen === 'M' ? 'M' + X(x0).toFixed(1) + ',' : 'V') + py + 'H' + px;
        else d += pen + px + ',' + py;
        pen = 'L';
      });
      if (opts.step && d) d += 'V' + Y(y0).toFixed(1);
      const path = s('path', {d: d || 'M0,0', class: sr.faint ? 'curve faint' : 'curve',
                              stroke: sr.colour}, s('title', {}, sr.name));
      if (sr.dataC !== undefined) path.setAttribute('data-c', sr.dataC);
      svg.append(path);
    }
    return svg;
  }

  function legend(items) {
    return h('div', {class: 'legend'}, ...items.map(([name, colour]) =>
      h('span', {}, h('i', {style: 'background:' + colour}), name)));
  }

  /* A table whose columns sort on click; rows: arrays of {text, v} cells (v: sort value). */
  function sortableTable(id, head, rows) {
    const thead = h('thead', {}, h('tr', {}, ...head.map(t => h('th', {scope: 'col'}, t))));
    const tbody = h('tbody');
    const trs = rows.map(r => h('tr', r.attrs || {}, ...r.cells.map((c, k) => h('td', {
      class: k === 0 ? 'name' : 'num', title: k === 0 ? c.text : null,
      'data-v': c.v !== undefined ? String(c.v) : null}, c.text))));
    trs.forEach(tr => tbody.append(tr));
    const table = h('table', {id: id, class: 'sortable'}, thead, tbody);
    thead.addEventListener('click', e => {
      const th = e.target.closest('th');
      if (!th) return;
      const k = Array.prototype.indexOf.call(th.parentNode.children, th);
      const dir = th.getAttribute('aria-sort') === 'descending' ? 'ascending' : 'descending';
      for (const o of th.parentNode.children) o.removeAttribute('aria-sort');
      th.setAttribute('aria-sort', dir);
      const val = tr => {
        const td = tr.children[k], v = td.getAttribute('data-v');
        return v === null ? td.textContent.toLowerCase() : +v;
      };
      const sign = dir === 'ascending' ? 1 : -1;
      const sorted = Array.from(tbody.children).sort((a, b) => {
        const x = val(a), y = val(b);
        return (x < y ? -1 : x > y ? 1 : 0) * sign;
      });
      sorted.forEach(tr => tbody.append(tr));
    });
    return table;
  }

  /* ------------------------------------------------------------------ header ----------- */
  function header() {
    const nDet = D.videos.reduce((n, v) => n + v[6].length / 8, 0);
    app.append(h('h1', {}, D.title));
    const meta = h('p', {class: 'meta'});
    if (D.gt_path) meta.append(h('span', {}, 'ground truth ', h('code', {}, D.gt_path)));
    if (D.pred_path) meta.append(h('span', {}, 'detections ', h('code', {}, D.pred_path)));
    meta.append(h('span', {}, 'protocol ' + D.protocol + ', subset ' + D.subset));
    meta.append(h('span', {}, C + ' classes, ' + D.n_gt_videos + ' GT videos, ' + nDet +
                  ' scored detections'));
    app.append(meta);
    const links = [['map', 'mAP'], ['pr', 'PR curves'], ['errors', 'errors'],
                   ['diagnosis', 'diagnosis']];
    if (D.training) links.push(['training', 'training']);
    links.push(['videos', 'videos']);
    app.append(h('nav', {}, ...links.map(([id, name]) => h('a', {href: '#' + id}, name))));
  }

  /* ------------------------------------------------------------------ mAP tables -------- */
  function mapSection() {
    const sec = h('section', {id: 'map'}, h('h2', {}, 'mAP at each tIoU threshold'));
    sec.append(h('table', {id: 'map-table'},
      h('thead', {}, h('tr', {}, h('th', {}, 'tIoU'),
                       ...D.tiou.map((t, k) => h('th', {}, tiouLabel(k))), h('th', {}, 'average'))),
      h('tbody', {}, h('tr', {}, h('th', {scope: 'row'}, 'mAP (%)'),
        ...D.mAP.map((m, k) => h('td', {'data-v': String(m), 'data-tiou': String(D.tiou[k])},
                                 pct(m))),
        h('td', {'data-v': String(D.average_mAP), 'data-tiou': 'average'}, pct(D.average_mAP))))));
    if (D.proposals) {
      const ar = D.proposals.AR_at, names = ['AR@1', 'AR@5', 'AR@10', 'AR@50', 'AR@100'];
      sec.append(h('p', {class: 'note', id: 'proposals'},
        'Proposals (labels ignored, at most 100 per video): ' +
        names.map((n, i) => n + ' ' + pct(ar[i])).join(', ') + ', AUC ' +
        num(D.proposals.AUC, 2) + '.'));
    }
    sec.append(h('h3', {}, 'AP (%) per class'),
               h('p', {class: 'note'},
                 'Click a column to sort; hover a row to find its PR curve.'));
    const rows = D.classes.map((name, c) => {
      const ap = D.AP[c];
      return {attrs: {'data-c': c}, cells: [{text: name}, {text: String(D.n_gt[c]), v: D.n_gt[c]},
        {text: String(D.n_det[c]), v: D.n_det[c]}, ...ap.map(a => ({text: pct(a), v: a})),
        {text: pct(mean(ap)), v: mean(ap)}]};
    });
    const table = sortableTable('class-table', ['class', '#GT', '#det',
      ...D.tiou.map((t, k) => 'AP@' + tiouLabel(k)), 'average'], rows);
    table.addEventListener('mouseover', e => highlightClass(e.target.closest('tr[data-c]')));
    table.addEventListener('mouseleave', () => highlightClass(null));
    sec.append(h('div', {class: 'scroll'}, table));
    app.append(sec);
  }

  function highlightClass(tr) {
    for (const p of document.querySelectorAll('#pr-plot .curve.hl')) p.classList.remove('hl');
    if (!tr) return;
    const p = document.querySelector('#pr-plot .curve[data-c="' + tr.getAttribute('data-c') + '"]');
    if (p) p.classList.add('hl'), p.parentNode.append(p);
  }

  /* ------------------------------------------------------------------ PR curves --------- */
  function prSection() {
    const sec = h('section', {id: 'pr'}, h('h2', {}, 'Precision-recall curves'),
      h('p', {class: 'note'}, 'Per class, the interpolated precision (the highest precision at ' +
        'this recall or beyond) that the AP integrates; hover a curve for its class.'));
    const sel = h('select', {id: 'pr-tiou'},
      ...D.tiou.map((t, k) => h('option', {value: k}, 'tIoU ' + tiouLabel(k))));
    const half = D.tiou.findIndex(t => Math.abs(t - 0.5) < 1e-9);
    sel.value = String(half >= 0 ? half : 0);
    const holder = h('div', {id: 'pr-plot'});
    function draw() {
      const t = +sel.value;
      /* the page holds each envelope from high recall to low */
      const series = D.pr[t].map((pts, c) => ({
        name: D.classes[c] + ': AP ' + pct(D.AP[c][t]) + '%', colour: classColour(c), dataC: c,
        xs: pts.filter((_, i) => i % 2 === 0).reverse(),
        ys: pts.filter((_, i) => i % 2 === 1).reverse()}));
      holder.replaceChildren(lineChart(series, {width: 560, height: 420, xLabel: 'recall', xFrom: 0,
        xTo: 1, yFrom: 0, yTo: 1, step: true}));
    }
    sel.addEventListener('change', draw);
    draw();
    sec.append(h('label', {}, 'threshold ', sel), holder);
    if (C <= 20) sec.append(legend(D.classes.map((n, c) => [n, classColour(c)])));
    app.append(sec);
  }

  /* ------------------------------------------------------------------ errors ------------ */
  const FP_NAMES = ['duplicate', 'localization', 'wrong label', 'confusion (label + loc.)',
                    'background'];
  const FP_COLOURS = ['#8c6bb1', '#f0a030', '#d6604d', '#c994c7', '#7f8c8d'];

  function errorSection() {
    const sec = h('section', {id: 'errors'},
                  h('h2', {}, 'False positives by cause and mAP by GT length'));
    const row = h('div', {class: 'row'});
    if (D.false_positives) {
      const fp = D.false_positives, W = 520, L = 56, barH = 18;
      const maxTotal = Math.max(1, ...fp.map(r => r.reduce((a, b) => a + b, 0)));
      const svg = s('svg', {width: W, height: T * (barH + 6) + 8, id: 'fp-plot'});
      fp.forEach((counts, t) => {
        const y = 4 + t * (barH + 6);
        svg.append(s('text', {x: L - 6, y: y + 13, 'text-anchor': 'end', class: 'tick'},
                     tiouLabel(t)));
        let x = L;
        counts.forEach((n, k) => {
          const w = n / maxTotal * (W - L - 10);
          svg.append(s('rect', {x: x, y: y, width: Math.max(0, w), height: barH,
                                fill: FP_COLOURS[k]},
            s('title', {}, FP_NAMES[k] + ' at tIoU ' + tiouLabel(t) + ': ' + n)));
          x += w;
        });
      });
      const table = h('table', {id: 'fp-table'}, h('thead', {}, h('tr', {}, h('th', {}, 'cause'),
        ...D.tiou.map((t, k) => h('th', {}, tiouLabel(k))))),
        h('tbody', {}, ...FP_NAMES.map((n, k) => h('tr', {}, h('td', {}, n),
          ...fp.map(r => h('td', {}, String(r[k])))))));
      row.append(h('div', {}, h('h3', {}, 'False positives by cause, at each tIoU'), svg,
        legend(FP_NAMES.map((n, k) => [n, FP_COLOURS[k]])), table,
        h('p', {class: 'note'}, 'Judged by the best tIoU of a false positive with the GT of its ' +
          'video: duplicate (its GT was already matched), localization (same class, tIoU 0.1 to ' +
          'the threshold), wrong label (another class\u2019s GT above the threshold), confusion ' +
          '(another class, 0.1 to the threshold), background (the rest).')));
    }
    if (D.by_gt_length.length) {
      const rows = D.by_gt_length.map(b => h('tr', {},
        h('td', {}, b.to_s !== null && isFinite(b.to_s) ? b.from_s + '\u2013' + b.to_s + ' s'
                                                         : '\u2265 ' + b.from_s + ' s'),
        h('td', {}, String(b.n_gt)), h('td', {}, String(b.n_classes)),
        ...b.mAP.map(m => h('td', {}, b.n_gt ? pct(m) : '-')),
        h('td', {}, b.n_gt ? pct(b.average_mAP) : '-'),
        h('td', {}, s('svg', {width: 120, height: 12}, s('rect', {x: 0, y: 1, height: 10,
          fill: '#2f5aa8', width: b.n_gt ? 120 * Math.max(0, b.average_mAP) : 0})))));
      row.append(h('div', {}, h('h3', {}, 'mAP (%) by GT length'),
        h('table', {id: 'length-table'}, h('thead', {}, h('tr', {}, h('th', {}, 'GT length'),
          h('th', {}, '#GT'), h('th', {}, 'classes'),
          ...D.tiou.map((t, k) => h('th', {}, tiouLabel(k))), h('th', {}, 'average'),
          h('th', {}, ''))), h('tbody', {}, ...rows)),
        h('p', {class: 'note'}, 'Each bucket keeps only its own GT; detections that found GT of ' +
          'another bucket are left out.')));
    } else {
      row.append(h('p', {class: 'empty'}, 'mAP by GT length: not computed (no buckets, or the ' +
      'thumos14 protocol).'));
    }
    if (!D.false_positives) row.append(h('p', {class: 'empty'}, 'False positives by cause: not ' +
      'computed under the thumos14 protocol.'));
    sec.append(row);
    app.append(sec);
  }

  function diagnosisSection() {
    const rows = D.diagnosis.filter((e, i) => e[1] !== 0 || i < 2 || i === 8 || i === 9);
    app.append(h('section', {id: 'diagnosis'}, h('h2', {}, 'Diagnosis of the input'),
      h('table', {}, h('tbody', {},
        ...rows.map(e => h('tr', {}, h('td', {}, e[0]), h('td', {}, String(e[1]))))))));
  }

  /* ------------------------------------------------------------------ training ---------- */
  function trainingSection() {
    const tr = D.training, sec = h('section', {id: 'training'}, h('h2', {}, 'Training'));
    if (tr.source) sec.append(h('p', {class: 'note'}, 'From ', h('code', {}, tr.source), '.'));
    const row = h('div', {class: 'row'});
    const colours = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
    /* a running mean over ~2% of the points, drawn over the faint raw curve */
    const smooth = ys => {
      const w = Math.max(1, Math.round(ys.length / 50)), out = [];
      let sum = 0, n = 0;
      ys.forEach((y, i) => {
        if (y !== null && isFinite(y)) sum += y, n++;
        const old = i >= w ? ys[i - w] : null;
        if (old !== null && isFinite(old)) sum -= old, n--;
        out.push(n ? sum / n : null);
      });
      return out;
    };
    const block = (title, group, xs, xLabel, yFormat, xInteger, smoothed) => {
      const names = Object.keys(group || {});
      if (!names.length || !xs.length) return;
      const colour = i => colours[i % colours.length];
      let series = names.map((n, i) => ({name: n, colour: colour(i), xs: xs, ys: group[n]}));
      if (smoothed && xs.length > 100)
        series = series.map(sr => Object.assign({}, sr, {faint: true})).concat(
          series.map(sr => Object.assign({}, sr, {name: sr.name + ' (running mean)',
                                                  ys: smooth(sr.ys)})));
      row.append(h('div', {}, h('h3', {}, title), lineChart(series, {width: 370, height: 240,
        xLabel: xLabel, yFormat: yFormat || undefined, xInteger: xInteger}),
        legend(names.map((n, i) => [n, colour(i)]))));
    };
    block('Losses', tr.series, tr.steps || [], 'update step', null, false, true);
    block('Learning rate', tr.lr, tr.steps || [], 'update step', v => v.toExponential(1));
    block('Validation mAP', tr.val, tr.val_epochs || [], 'epoch', null, true);
    if (!row.children.length)
      row.append(h('p', {class: 'empty'}, 'The training log holds no lines yet.'));
    sec.append(row);
    app.append(sec);
  }

  /* ------------------------------------------------------------------ videos ------------ */
  const GT_STRIDE = 6, DET_STRIDE = 8, AXIS_H = 20, LANE_H = 18, LABEL_W = 150, RIGHT = 12;
  let minScore = Infinity, maxScore = -Infinity;
  for (const v of D.videos)
    for (let k = 3; k < v[6].length; k += DET_STRIDE)
      minScore = Math.min(minScore, v[6][k]), maxScore = Math.max(maxScore, v[6][k]);
  if (!isFinite(minScore)) minScore = 0, maxScore = 1;
  const scoreColour = x =>
    rampColour(maxScore > minScore ? (x - minScore) / (maxScore - minScore) : 1);
  /* The default score threshold keeps the best 3 x #GT detections of the page: the hits and
   * the strongest false positives, not a wall of low scores; #all keeps every detection. */
  function defaultThreshold() {
    let nGt = 0, n = 0;
    for (const v of D.videos) nGt += v[5].length / GT_STRIDE, n += v[6].length / DET_STRIDE;
    if (location.hash === '#all' || !n || 3 * nGt >= n) return minScore;
    const scores = new Float64Array(n);
    let i = 0;
    for (const v of D.videos)
      for (let k = 3; k < v[6].length; k += DET_STRIDE) scores[i++] = v[6][k];
    scores.sort();
    return scores[n - 3 * nGt];
  }
  const view = {threshold: defaultThreshold(),
                tiou: Math.max(0, D.tiou.findIndex(t => Math.abs(t - 0.5) < 1e-9))};

  /* the classes that get a lane in a video: those of its GT and of its detections */
  const laneCache = new Map();
  function lanesOf(v) {
    if (laneCache.has(v)) return laneCache.get(v);
    const set = new Set();
    for (let k = 0; k < v[5].length; k += GT_STRIDE) set.add(v[5][k]);
    for (let k = 0; k < v[6].length; k += DET_STRIDE) set.add(v[6][k]);
    const lanes = Array.from(set).sort((a, b) => a - b);
    laneCache.set(v, lanes);
    return lanes;
  }
  const timelineHeight = v => AXIS_H + (1 + lanesOf(v).length) * LANE_H + 6;
  const masked = (mask, t) => ((mask >>> t) & 1) === 1;
  const thresholdsOf = mask => D.tiou.filter((_, t) => masked(mask, t)).map(x => x.toFixed(2));

  function drawTimeline(div) {
    const v = D.videos[+div.getAttribute('data-i')];
    const g = v[5], p = v[6], lanes = lanesOf(v);
    const W = Math.max(400, div.clientWidth || 1000), H = timelineHeight(v);
    let t0 = 0, t1 = v[1] || 0;
    for (let k = 0; k < g.length; k += GT_STRIDE)
      t0 = Math.min(t0, g[k + 1]), t1 = Math.max(t1, g[k + 2]);
    for (let k = 0; k < p.length; k += DET_STRIDE)
      t0 = Math.min(t0, p[k + 1]), t1 = Math.max(t1, p[k + 2]);
    if (!(t1 > t0)) t1 = t0 + 1;
    const X = t => LABEL_W + (t - t0) / (t1 - t0) * (W - LABEL_W - RIGHT);
    const laneY = i => AXIS_H + i * LANE_H;
    const svg = s('svg', {width: W, height: H, class: 'tl'});
    for (const t of ticks(t0, t1, Math.max(2, Math.floor((W - LABEL_W) / 90)))) {
      svg.append(s('line', {x1: X(t), x2: X(t), y1: AXIS_H - 4, y2: H - 4, class: 'grid'}));
      svg.append(s('text', {x: X(t), y: 12, 'text-anchor': 'middle', class: 'tick'}, t + ' s'));
    }
    svg.append(s('text', {x: 6, y: laneY(0) + 13, class: 'lane-label'}, 'GT'));
    lanes.forEach((c, i) => {
      const name = D.classes[c];
      svg.append(s('text', {x: 6, y: laneY(i + 1) + 13, class: 'lane-label', fill: classColour(c)},
        name.length > 22 ? name.slice(0, 21) + '\u2026' : name, s('title', {}, name)));
    });
    const laneOf = new Map(lanes.map((c, i) => [c, i + 1]));
    for (let k = 0, n = 0; k < g.length; k += GT_STRIDE, n++) {
      const x = X(g[k + 1]), w = Math.max(1.5, X(g[k + 2]) - x);
      const hit = masked(g[k + 3], view.tiou), ignored = g[k + 5] === 1;
      svg.append(s('rect', {x: x, y: laneY(laneOf.get(g[k])) + 2, width: w, height: LANE_H - 4,
        fill: '#000', 'fill-opacity': 0.06, class: 'band'}));
      svg.append(s('rect', {x: x, y: laneY(0) + 2, width: w, height: LANE_H - 4, class: 'gt',
        'data-k': n, fill: classColour(g[k]), 'fill-opacity': ignored ? 0.25 : 0.8,
        stroke: hit || ignored ? '#1d2330' : '#d0021b', 'stroke-width': hit ? 1 : 1.6,
        'stroke-dasharray': hit || ignored ? null : '4 2'}));
    }
    const order = [];
    for (let k = 0; k < p.length; k += DET_STRIDE) if (p[k + 3] >= view.threshold) order.push(k);
    order.sort((a, b) => p[a + 3] - p[b + 3]); /* the strongest are drawn last, on top */
    for (const k of order) {
      const x = X(p[k + 1]), w = Math.max(1.5, X(p[k + 2]) - x), tp = masked(p[k + 6], view.tiou);
      svg.append(s('rect', {x: x, y: laneY(laneOf.get(p[k])) + 2, width: w, height: LANE_H - 4,
        class: 'pred', 'data-k': k / DET_STRIDE, fill: scoreColour(p[k + 3]), 'fill-opacity': 0.85,
        stroke: tp ? '#000' : null, 'stroke-width': tp ? 1.4 : null}));
    }
    div.replaceChildren(svg);
    div.setAttribute('data-state', 'drawn');
  }

  function tooltipText(v, rect) {
    const k = +rect.getAttribute('data-k');
    const span = (a, b) => num(a, 2) + '\u2013' + num(b, 2) + ' s';
    if (rect.classList.contains('gt')) {
      const g = v[5].slice(k * GT_STRIDE, (k + 1) * GT_STRIDE), hit = thresholdsOf(g[3]);
      const missed = D.tiou.filter((_, t) => !masked(g[3], t)).map(x => x.toFixed(2));
      const lines = ['GT: ' + D.classes[g[0]],
                     span(g[1], g[2]) + ' (' + num(g[2] - g[1], 2) + ' s)'];
      if (g[5] === 1) lines.push('not scored (removed as a duplicate by the protocol)');
      else {
        if (hit.length) lines.push('matched at tIoU ' + hit.join(', '));
        if (missed.length) lines.push('missed at tIoU ' + missed.join(', '));
        if (g[4] > 0) lines.push('being missed costs ' + g[4] + ' mAP points');
      }
      return lines.join('\n');
    }
    const d = v[6].slice(k * DET_STRIDE, (k + 1) * DET_STRIDE), tp = thresholdsOf(d[6]);
    const lines = [D.classes[d[0]] + ', score ' + d[3], span(d[1], d[2])];
    if (d[5] >= 0) {
      const g = v[5].slice(d[5] * GT_STRIDE, (d[5] + 1) * GT_STRIDE);
      lines.push('tIoU with its best GT: ' + num(d[4], 3) + ' (GT ' + span(g[1], g[2]) + ')');
    } else {
      lines.push('no GT of its class in this video');
    }
    lines.push(tp.length ? 'true positive at tIoU ' + tp.join(', ')
                         : 'false positive at every threshold');
    if (d[7] > 0) lines.push('costs ' + d[7] + ' mAP points (ranked above TPs)');
    return lines.join('\n');
  }

  function videosSection() {
    const sec = h('section', {id: 'videos'}, h('h2', {}, 'Videos'));
    const total = 100 * (1 - D.average_mAP);
    const unattributed = D.loss_unattributed > 0 ? ' less ' + num(100 * D.loss_unattributed, 2) +
      ' points of classes left without GT' : '';
    sec.append(h('p', {class: 'note'}, 'Sorted by the mAP lost in each video, worst first. The ' +
      'average mAP misses ' + num(total, 2) + ' points of 100; they are shared out exactly: a ' +
      'missed GT costs its class\u2019s recall step, and each true positive\u2019s shortfall ' +
      'from precision 1 is charged in equal parts to the false positives ranked above it ' +
      '(averaged over classes and thresholds; THUMOS-14\u2019s 11-point AP by recall level). ' +
      'The losses of all videos add up to the total' + unattributed + '. Each timeline is ' +
      'drawn when it scrolls into view.'));
    const filter = h('input', {type: 'search', id: 'filter',
                               placeholder: 'filter: video id or class'});
    const slider = h('input', {type: 'range', id: 'score-threshold', min: minScore, max: maxScore,
      step: 'any', value: view.threshold,
      title: 'default: the best 3 \u00d7 #GT detections of the page'});
    const sliderLabel = h('span', {id: 'score-label'}, '');
    const tiouSel = h('select', {id: 'video-tiou'},
      ...D.tiou.map((t, k) => h('option', {value: k}, tiouLabel(k))));
    tiouSel.value = String(view.tiou);
    const shown = h('span', {id: 'shown'}, '');
    const gradient = h('span', {class: 'gradient', style: 'background:linear-gradient(90deg,' +
      [0, 0.25, 0.5, 0.75, 1].map(rampColour).join(',') + ')'});
    sec.append(h('div', {class: 'controls'}, filter,
      h('label', {}, 'score \u2265 ', slider, ' ', sliderLabel),
      h('label', {}, 'TP / missed at tIoU ', tiouSel),
      h('span', {class: 'legend'}, 'score ' + num(minScore, 2), gradient, num(maxScore, 2)),
      legend([['GT (missed: red dashes)', '#bbb'], ['TP: black outline', '#fff']]), shown));
    const list = h('div', {id: 'video-list'});
    const frag = document.createDocumentFragment();
    const searchText = [];
    D.videos.forEach((v, i) => {
      const counts = h('span', {class: 'counts'}); /* filled by updateLabels */
      const head = h('div', {class: 'vhead'}, h('span', {class: 'rank'}, '#' + (i + 1)),
        h('span', {class: 'vid', title: v[0]}, v[0]),
        h('span', {class: 'loss',
                   title: 'mAP points lost in this video (' + v[3] + ' by missed GT)'},
          '\u2212' + num(v[2], 3) + ' mAP points'), counts,
        v[4] ? null : h('span', {class: 'badge'}, 'not in the GT subset'));
      const tl = h('div', {class: 'timeline', 'data-i': i, 'data-state': 'pending',
        'data-video': v[0], 'data-gt': v[5].length / GT_STRIDE,
        'data-dets': v[6].length / DET_STRIDE,
        style: 'height:' + timelineHeight(v) + 'px'});
      frag.append(h('div', {class: 'video', id: 'video-' + i}, head, tl));
      searchText.push((v[0] + '\n' + lanesOf(v).map(c => D.classes[c]).join('\n')).toLowerCase());
    });
    list.append(frag);
    if (!D.videos.length) list.append(h('p', {class: 'empty'}, 'No videos.'));
    sec.append(list);
    app.append(sec);
    const tip = h('div', {id: 'tooltip'});
    document.body.append(tip);

    const visible = new Set();
    /* The timelines in or near the view, drawn at once: the observer reports only at the next
     * frame (and a headless browser may draw none). */
    function drawNearView() {
      const below = window.innerHeight + 600;
      for (const tl of timelines) {
        if (tl.getAttribute('data-state') === 'drawn' || tl.parentNode.hidden) continue;
        const r = tl.getBoundingClientRect();
        if (r.bottom >= -600 && r.top <= below) drawTimeline(tl);
      }
    }
    const io = new IntersectionObserver(entries => {
      for (const e of entries) {
        if (e.isIntersecting) {
          visible.add(e.target);
          if (e.target.getAttribute('data-state') !== 'drawn') drawTimeline(e.target);
        } else {
          visible.delete(e.target);
        }
      }
    }, {rootMargin: '600px 0px'});
    const timelines = Array.from(list.querySelectorAll('.timeline'));
    timelines.forEach(tl => io.observe(tl));

    /* After a control changed: the timelines in or near the view now, the others when they
     * come into view. */
    function redraw() {
      for (const tl of timelines) {
        if (visible.has(tl) || location.hash === '#all') drawTimeline(tl);
        else if (tl.getAttribute('data-state') === 'drawn')
          tl.replaceChildren(), tl.setAttribute('data-state', 'pending');
      }
      drawNearView();
    }
    function updateLabels() {
      sliderLabel.textContent = num(view.threshold, 3);
      let n = 0;
      list.querySelectorAll('.video').forEach((el, i) => {
        if (!el.hidden) n++;
        const v = D.videos[i];
        let missed = 0;
        for (let k = 0; k < v[5].length; k += GT_STRIDE)
          if (v[5][k + 5] !== 1 && !masked(v[5][k + 3], view.tiou)) missed++;
        el.querySelector('.counts').textContent = v[5].length / GT_STRIDE + ' GT, ' +
          v[6].length / DET_STRIDE + ' detections, ' + missed + ' GT missed at ' +
          tiouLabel(view.tiou);
      });
      shown.textContent = n + ' of ' + D.videos.length + ' videos';
    }
    slider.addEventListener('input', () => {
      view.threshold = +slider.value;
      updateLabels();
      redraw();
    });
    tiouSel.addEventListener('change', () => {
      view.tiou = +tiouSel.value;
      updateLabels();
      redraw();
    });
    filter.addEventListener('input', () => {
      const q = filter.value.trim().toLowerCase();
      list.querySelectorAll('.video').forEach((el, i) => {
        el.hidden = q !== '' && !searchText[i].includes(q);
      });
      updateLabels();
      drawNearView();
    });
    list.addEventListener('mousemove', e => {
      const rect = e.target.closest('rect.gt, rect.pred');
      if (!rect) { tip.style.display = 'none'; return; }
      const tl = rect.closest('.timeline');
      tip.textContent = tooltipText(D.videos[+tl.getAttribute('data-i')], rect);
      tip.style.display = 'block';
      const x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      const below = e.clientY + 16 + tip.offsetHeight <= window.innerHeight;
      const y = below ? e.clientY + 16 : e.clientY - tip.offsetHeight - 10;
      tip.style.left = x + 'px';
      tip.style.top = y + 'px';
    });
    list.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
    updateLabels();
    if (location.hash === '#all') timelines.forEach(drawTimeline);
    return drawNearView;
  }

  header();
  mapSection();
  prSection();
  errorSection();
  diagnosisSection();
  if (D.training) trainingSection();
  const drawNearView = videosSection();
  if (location.hash && location.hash !== '#all') {
    const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) target.scrollIntoView();
  }
  drawNearView();
  document.body.setAttribute('data-ready', 'yes');
  /* for benchmarks: the script's time, and the time since navigation began (file read, HTML
   * and JSON parsed, page built) */
  document.body.setAttribute('data-script-ms', String(Math.round(performance.now() - started)));
  document.body.setAttribute('data-ready-ms', String(Math.round(performance.now())));
})();
