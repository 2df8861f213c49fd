// cnnlab's convolution lab page. Every knob change sends the settings to POST /api/lab/filter (one request in
// flight at a time; the latest settings are sent as soon as it returns) and shows what cnnlab.lab.vision computed:
// the output picture, every shape with the formula that gave it, the value range, and the numbers of a small
// crop, which the step-by-step mode slides the kernel over, cell by cell.
"use strict";

const UPLOAD_SIDE = 512;      // pictures are reduced to this longest side before upload: the course's size, and live
const INK_WIDTH = 14;         // pixels of a drawing stroke on the 256×256 pad
const STEP_DELAY_MS = 2400;   // one cell per this many ms at speed 1, ten times faster at speed 10
const CHANNEL_NAMES = ["red", "green", "blue"];
const COLOUR_PRESET_KERNELS = ["sobel-x", "sobel-y", "mean"];  // three planes, each with its own kernel

const $ = (id) => document.getElementById(id);
const knobs = {
  picture: $("picture"), colour: $("colour"), kernelName: $("kernel-name"), kernelSize: $("kernel-size"),
  kernelRows: $("kernel-rows"), kernelCols: $("kernel-cols"), ownKernels: $("own-kernels"),
  strideRows: $("stride-rows"), strideCols: $("stride-cols"), padding: $("padding"),
  poolKind: $("pool-kind"), poolSize: $("pool-size"),
  cropTop: $("crop-top"), cropLeft: $("crop-left"), cropSize: $("crop-size"), stepChannel: $("step-channel"),
  stepSpeed: $("step-speed"),
};

let namedKernels = {};        // name -> {description, weights: {size: rows}} from GET /api/lab/kernels
let pictures = {};            // id -> {id, name, shape} from GET /api/lab/pictures
let grids = [];               // the kernel being edited: one grid of cell texts, or one per colour plane
let inFlight = false;         // a request is on its way...
let pending = false;          // ...and the knobs moved since it left
let step = null;              // the step crop of the latest answer
let stepKey = "";             // what the step crop's layout depends on: a new layout starts the slide again
let stepIndex = 0;            // output cells filled so far
let playTimer = 0;

// --- small helpers ------------------------------------------------------------------------------

const shape = (numbers) => numbers.join("×");
const short = (value) => (Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) >= 10 ? 1 : 2));
const precise = (value) => String(Number(value.toPrecision(6)));
// A typed number, or the text itself: the API then answers which cell or knob is not a number, and why.
const typed = (text) => (text.trim() !== "" && Number.isFinite(Number(text)) ? Number(text) : text);

function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

function showStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
  $("outputs").classList.toggle("stale", isError);
}

// --- the kernel editor --------------------------------------------------------------------------

function isColourPicture() {
  return (pictures[knobs.picture.value]?.shape.length ?? 2) === 3;
}

function usesPlanes() {
  return isColourPicture() && knobs.colour.value !== "gray";
}

function setNamedKernel(name, size) {
  knobs.kernelName.value = name;
  const kernel = namedKernels[name];
  if (!kernel) {                              // "none" (pooling only) or "custom": the grid stays as it is
    updateKernelNote();
    return;
  }
  const sizes = Object.keys(kernel.weights).map(Number);   // 1 to 7; odd ones only for identity; 3 for fixed ones
  const chosen = sizes.includes(size) ? size : sizes.find((each) => each > size) ?? sizes[sizes.length - 1];
  knobs.kernelSize.min = sizes[0];
  knobs.kernelSize.step = sizes.length > 1 ? sizes[1] - sizes[0] : 1;  // the slider stops at the sizes there are
  knobs.kernelSize.value = chosen;
  $("kernel-size-value").textContent = chosen;
  const rows = kernel.weights[chosen].map((row) => row.map(String));
  grids = grids.length > 1 ? grids.map(() => rows.map((row) => [...row])) : [rows];
  renderGrids();
}

function updateKernelNote() {
  const name = knobs.kernelName.value;
  const fixed = namedKernels[name] && Object.keys(namedKernels[name].weights).length === 1;
  knobs.kernelSize.disabled = !namedKernels[name] || fixed;
  const none = name === "none";
  for (const knob of [knobs.kernelRows, knobs.kernelCols, knobs.ownKernels]) knob.disabled = none;
  $("kernel-grids").classList.toggle("off", none);
  $("kernel-note").textContent = none ? "No convolution: the picture goes straight to the pooling layer."
    : namedKernels[name]?.description ?? "Your own numbers: type any value in a cell (Tab moves on).";
}

function resizeGrids() {
  const rows = Number(knobs.kernelRows.value) || 1;
  const cols = Number(knobs.kernelCols.value) || 1;
  grids = grids.map((grid) => Array.from({ length: rows }, (_, r) =>
    Array.from({ length: cols }, (_, c) => grid[r]?.[c] ?? "0")));
  knobs.kernelName.value = "custom";
  renderGrids();
}

function renderGrids() {
  knobs.kernelRows.value = grids[0].length;
  knobs.kernelCols.value = grids[0][0].length;
  const box = $("kernel-grids");
  box.replaceChildren(...grids.map((grid, g) => {
    const figure = element("figure", "kernel-grid");
    if (grids.length > 1) figure.append(element("figcaption", `plane ${CHANNEL_NAMES[g]}`, CHANNEL_NAMES[g]));
    const cells = element("div", "grid-inputs");
    cells.style.gridTemplateColumns = `repeat(${grid[0].length}, minmax(0, 3.6em))`;
    grid.forEach((row, r) => row.forEach((text, c) => {
      const cell = element("input");
      Object.assign(cell, { type: "text", value: text, inputMode: "decimal", spellcheck: false });
      cell.dataset.grid = g;
      cell.dataset.row = r;
      cell.dataset.col = c;
      cell.setAttribute("aria-label", `kernel${grids.length > 1 ? ` of the ${CHANNEL_NAMES[g]} plane` : ""}, ` +
        `row ${r + 1}, column ${c + 1}`);
      cells.append(cell);
    }));
    figure.append(cells);
    return figure;
  }));
  updateKernelNote();
}

$("kernel-grids").addEventListener("input", (event) => {
  const { grid, row, col } = event.target.dataset;
  grids[grid][row][col] = event.target.value;
  knobs.kernelName.value = "custom";
  updateKernelNote();
  refresh();
});

// --- asking the API -------------------------------------------------------------------------------

function settings() {
  const body = {
    picture: knobs.picture.value,
    colour: isColourPicture() ? knobs.colour.value : "gray",
    stride: [typed(knobs.strideRows.value), typed(knobs.strideCols.value)],
    padding: knobs.padding.value,
    step: { top: Number(knobs.cropTop.value) || 0, left: Number(knobs.cropLeft.value) || 0,
            size: typed(knobs.cropSize.value) },
  };
  const kernels = grids.map((grid) => grid.map((row) => row.map(typed)));
  if (knobs.kernelName.value !== "none") {
    if (usesPlanes() && kernels.length > 1) body.channel_kernels = kernels;
    else body.kernel = kernels[0];
  }
  if (knobs.poolKind.value) body.pool = { kind: knobs.poolKind.value, size: [knobs.poolSize.value, knobs.poolSize.value].map(Number) };
  return body;
}

function refresh() {
  pending = true;
  if (!inFlight) send();
}

async function send() {
  pending = false;
  inFlight = true;
  const started = performance.now();
  try {
    const response = await fetch("/api/lab/filter", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(settings()) });
    const answer = await response.json();
    if (!pending) {                           // newer settings are waiting: this answer is already old
      if (response.ok) showAnswer(answer, performance.now() - started);
      else showRefusal(answer, response.status);
    }
  } catch (error) {
    showStatus(`Could not reach the server: ${error.message}`, true);
  } finally {
    inFlight = false;
    if (pending) send();
  }
}

// What a refusal is about, in the page's words: ["body", "kernel", 1, 2] -> "Kernel, row 2, column 3".
function where(location) {
  const [field, ...rest] = location.slice(1);
  const cell = (r, c) => (r === undefined ? "" : `, row ${r + 1}${c === undefined ? "" : `, column ${c + 1}`}`);
  if (field === "kernel") return `Kernel${cell(...rest)}`;
  if (field === "channel_kernels") return `Kernel of the ${CHANNEL_NAMES[rest[0]] ?? "?"} plane${cell(...rest.slice(1))}`;
  if (field === "stride") return `Strides${rest.length ? ` (${["rows", "columns"][rest[0]]})` : ""}`;
  if (field === "pool") return "Pooling";
  if (field === "step") return "Step crop";
  return [field, ...rest].join(" ");
}

function showRefusal(answer, status) {
  document.querySelectorAll("#kernel-grids input.invalid").forEach((cell) => cell.classList.remove("invalid"));
  if (!Array.isArray(answer.detail)) {
    showStatus(answer.detail ?? `The server answered ${status}`, true);
    return;
  }
  const lines = answer.detail.map(({ loc, msg }) => {
    const [field, grid, row, col] = loc.slice(1);
    const cell = field === "kernel" ? `[data-grid="0"][data-row="${grid}"][data-col="${row}"]`
      : field === "channel_kernels" ? `[data-grid="${grid}"][data-row="${row}"][data-col="${col}"]` : null;
    if (cell) document.querySelector(`#kernel-grids input${cell}`)?.classList.add("invalid");
    return `${where(loc)}: ${msg.replace(/^Value error, /, "")}`;
  });
  showStatus(lines.join(" · "), true);
}

// --- showing the answer ---------------------------------------------------------------------------

function showAnswer(answer, milliseconds) {
  document.querySelectorAll("#kernel-grids input.invalid").forEach((cell) => cell.classList.remove("invalid"));
  showStatus("");
  $("input-shape").textContent = shape(answer.input_shape);
  const outputs = $("outputs");
  if (outputs.children.length !== answer.images.length) {
    outputs.replaceChildren(...answer.images.map(() => {
      const figure = element("figure", "shown");
      figure.append(element("div", "picture-frame"), element("figcaption"));
      figure.firstChild.append(new Image());
      return figure;
    }));
  }
  const planeShape = shape(answer.output_shape.slice(0, 2));
  answer.images.forEach((image, index) => {
    const figure = outputs.children[index];
    figure.querySelector("img").src = image.url;
    figure.querySelector("img").alt = `The ${image.name === "output" ? "output" : `${image.name} plane's output`}`;
    figure.querySelector("figcaption").textContent = `${image.name} ${planeShape}`;
  });
  showShapes(answer);
  $("range-min").textContent = precise(answer.minimum);
  $("range-min").dataset.value = answer.minimum;
  $("range-max").textContent = precise(answer.maximum);
  $("range-max").dataset.value = answer.maximum;
  $("drawn-as").textContent = answer.drawn_as;
  $("timing").textContent = `answered in ${Math.round(milliseconds)} ms`;
  showStep(answer.step ?? null);
}

function showShapes(answer) {
  const line = $("shapes");
  line.replaceChildren(element("span", "shape", shape(answer.input_shape)));
  for (const stage of answer.stages) {
    const what = stage.name === "convolution"
      ? `convolution ${shape(stage.window)}, strides (${stage.stride.join(", ")}), ${stage.padding}`
      : `${stage.name} ${shape(stage.window)}`;
    line.append(element("span", "arrow", " → "), element("span", "layer", what), element("span", "arrow", " → "),
      element("span", "shape", shape(stage.output_shape)));
  }
  if (!answer.stages.length) line.append(element("span", "layer", " (no layer: the output is the input)"));
  line.lastElementChild.id = "output-shape";
  $("formula").textContent = answer.formula;
  $("formula-lines").replaceChildren(...answer.stages.flatMap((stage) => stage.axes.map((axis) =>
    element("li", "", `${stage.name}, ${axis.axis}: floor((${axis.n} + ${axis.pad} − ${axis.k}) / ${axis.s}) + 1 = ${axis.out}`))));
}

// --- step by step ---------------------------------------------------------------------------------

function stepPlane() {
  return step ? Math.min(Number(knobs.stepChannel.value) || 0, step.values.length - 1) : 0;
}

// The output the step mode fills: what the layer computes, or in per-channel mode the chosen plane's own output.
function stepOutput() {
  return step.values.length > 1 && knobs.colour.value === "per-channel" ? step.contributions[stepPlane()] : step.output;
}

function showStep(crop) {
  step = crop;
  $("step-card").classList.toggle("off", !step);
  $("crop-box").hidden = !step;
  if (!step) {
    stopPlaying();
    $("step-where").textContent = "Choose a kernel to slide it over the picture.";
    for (const id of ["step-input", "step-kernel", "step-output", "step-products"]) $(id).replaceChildren();
    $("step-sum").textContent = "";
    return;
  }
  const [height, width] = [step.values[0].length, step.values[0][0].length];
  const key = JSON.stringify([step.top, step.left, height, width, step.stride, step.pad_before,
    step.kernels[0].length, step.kernels[0][0].length]);
  if (key !== stepKey) { stepKey = key; stepIndex = 0; stopPlaying(); }
  for (const [knob, value] of [[knobs.cropTop, step.top], [knobs.cropLeft, step.left]]) {
    if (document.activeElement !== knob) knob.value = value;   // the crop moved inside the picture
  }
  const planes = step.channel_names;
  knobs.stepChannel.hidden = planes.length < 2;
  if (knobs.stepChannel.options.length !== planes.length) {
    knobs.stepChannel.replaceChildren(...planes.map((name, index) => new Option(`${name} plane`, index)));
  }
  const picture = pictures[knobs.picture.value];
  const box = $("crop-box").style;
  box.top = `${(100 * step.top) / picture.shape[0]}%`;
  box.left = `${(100 * step.left) / picture.shape[1]}%`;
  box.height = `${(100 * height) / picture.shape[0]}%`;
  box.width = `${(100 * width) / picture.shape[1]}%`;
  const padded = step.pad_before.some(Boolean) || step.pad_after.some(Boolean);
  $("step-input-note").textContent = `${shape([height, width])} at (${step.top}, ${step.left})` +
    (padded ? ", zero padding around it" : "");
  drawStep();
}

// The output cell stepIndex − 1 and its window: highlighted on the crop, its products and their sum shown.
function drawStep() {
  const plane = stepPlane();
  const values = step.values[plane];
  const kernel = step.kernels[plane];
  const output = stepOutput();
  const [outRows, outCols] = [output.length, output[0].length];
  const current = stepIndex - 1;
  const [y, x] = [Math.floor(current / outCols), current % outCols];
  const [top, left] = [y * step.stride[0], x * step.stride[1]];   // the window's corner in the padded crop
  const inWindow = (r, c) => current >= 0 && r >= top && r < top + kernel.length && c >= left && c < left + kernel[0].length;
  const pixel = (r, c) => values[r - step.pad_before[0]]?.[c - step.pad_before[1]];

  const rows = values.length + step.pad_before[0] + step.pad_after[0];
  const cols = values[0].length + step.pad_before[1] + step.pad_after[1];
  fillCells($("step-input"), rows, cols, (cell, r, c) => {
    const value = pixel(r, c);
    cell.textContent = value === undefined ? "0" : value.toFixed(2);
    cell.classList.toggle("pad", value === undefined);
    cell.classList.toggle("in-window", inWindow(r, c));
    if (value !== undefined) shade(cell, value);
  });
  fillCells($("step-kernel"), kernel.length, kernel[0].length, (cell, r, c) => { cell.textContent = short(kernel[r][c]); });
  fillCells($("step-output"), outRows, outCols, (cell, r, c) => {
    const index = r * outCols + c;
    cell.textContent = index < stepIndex ? short(output[r][c]) : "";
    cell.title = index < stepIndex ? precise(output[r][c]) : "";
    cell.dataset.value = index < stepIndex ? output[r][c] : "";
    cell.classList.toggle("filled", index < stepIndex);
    cell.classList.toggle("current", index === current);
  });
  $("step-output-note").textContent = `${shape([outRows, outCols])}, ${stepIndex} of ${outRows * outCols} filled`;
  $("step-back").disabled = stepIndex === 0;
  $("step-next").disabled = stepIndex === outRows * outCols;

  if (current < 0) {
    $("step-where").textContent = "Press Step or Play to slide the kernel.";
    $("step-products").replaceChildren();
    $("step-sum").textContent = "";
    return;
  }
  $("step-where").textContent = `Output cell (${y}, ${x}): the window at rows ${top}–${top + kernel.length - 1}, ` +
    `columns ${left}–${left + kernel[0].length - 1} of the crop; each pixel × its weight:`;
  fillCells($("step-products"), kernel.length, kernel[0].length, (cell, r, c) => {
    const value = pixel(top + r, left + c) ?? 0;
    cell.textContent = short(value * kernel[r][c]);
    cell.title = `${value.toFixed(4)} × ${kernel[r][c]}`;
  });
  const perPlane = step.contributions.map((contribution) => contribution[y][x]);
  $("step-sum").textContent = step.values.length > 1 && knobs.colour.value !== "per-channel"
    ? `sum over the ${CHANNEL_NAMES[plane]} window = ${precise(perPlane[plane])}; the three planes summed: ` +
      `${perPlane.map(precise).join(" + ")} = ${precise(output[y][x])}`
    : `sum = ${precise(output[y][x])}`;
}

function fillCells(box, rows, cols, fill) {
  if (box.children.length !== rows * cols) {
    box.replaceChildren(...Array.from({ length: rows * cols }, (_, index) => {
      const cell = element("span", "cell");
      cell.dataset.row = Math.floor(index / cols);
      cell.dataset.col = index % cols;
      return cell;
    }));
  }
  box.style.gridTemplateColumns = `repeat(${cols}, 1fr)`;
  box.style.setProperty("--columns", cols);   // lab.css sizes each board from its number of columns
  [...box.children].forEach((cell, index) => fill(cell, Math.floor(index / cols), index % cols));
}

function shade(cell, value) {                 // a pixel's cell in its own gray level, the text readable on it
  const level = Math.round(255 * Math.min(Math.max(value, 0), 1));
  cell.style.backgroundColor = `rgb(${level}, ${level}, ${level})`;
  cell.style.color = level < 140 ? "#f8fafc" : "#172033";
}

function moveStep(delta) {
  if (!step) return;
  const output = stepOutput();
  stepIndex = Math.min(Math.max(stepIndex + delta, 0), output.length * output[0].length);
  drawStep();
}

function stopPlaying() {
  clearInterval(playTimer);
  playTimer = 0;
  $("step-play").textContent = "▶ Play";
  $("step-play").setAttribute("aria-pressed", "false");
}

function togglePlay() {
  if (playTimer || !step) { stopPlaying(); return; }
  const output = stepOutput();
  if (stepIndex === output.length * output[0].length) stepIndex = 0;   // at the end: play again from the start
  playTimer = setInterval(() => {
    moveStep(1);
    const filled = stepOutput();
    if (stepIndex === filled.length * filled[0].length) stopPlaying();
  }, STEP_DELAY_MS / Number(knobs.stepSpeed.value));
  $("step-play").textContent = "❚❚ Pause";
  $("step-play").setAttribute("aria-pressed", "true");
}
knobs.stepSpeed.addEventListener("input", () => { if (playTimer) { stopPlaying(); togglePlay(); } });

$("step-next").addEventListener("click", () => moveStep(1));
$("step-back").addEventListener("click", () => moveStep(-1));
$("step-reset").addEventListener("click", () => { stopPlaying(); moveStep(-Infinity); });
$("step-play").addEventListener("click", togglePlay);
knobs.stepChannel.addEventListener("change", () => step && drawStep());
$("step-card").addEventListener("keydown", (event) => {
  const tag = event.target.tagName;
  if (tag === "INPUT" || tag === "SELECT" || (tag === "BUTTON" && event.key === " ")) return;
  const action = { ArrowRight: () => moveStep(1), ArrowLeft: () => moveStep(-1), " ": togglePlay }[event.key];
  if (action) { event.preventDefault(); action(); }
});

$("input-frame").addEventListener("click", (event) => {   // the crop, centred where the picture was clicked or tapped
  const box = event.currentTarget.getBoundingClientRect();
  const picture = pictures[knobs.picture.value];
  const size = Number(knobs.cropSize.value) || 8;
  knobs.cropTop.value = Math.max(0, Math.round(((event.clientY - box.top) / box.height) * picture.shape[0] - size / 2));
  knobs.cropLeft.value = Math.max(0, Math.round(((event.clientX - box.left) / box.width) * picture.shape[1] - size / 2));
  refresh();
});

// --- pictures: the built-in ones, uploads and drawings --------------------------------------------

function addPicture(picture) {
  pictures[picture.id] = picture;
  const colour = picture.shape.length === 3 ? "colour" : "gray";
  knobs.picture.append(new Option(`${picture.name} · ${shape(picture.shape.slice(0, 2))} ${colour}`, picture.id));
}

function choosePicture(id) {
  knobs.picture.value = id;
  const picture = pictures[id];
  $("input-image").src = `/api/lab/pictures/${encodeURIComponent(id)}.png`;
  const colour = picture.shape.length === 3;
  knobs.colour.disabled = !colour;
  $("colour-note").textContent = colour
    ? "Three planes, red, green and blue, each with its kernel; summed, as a Conv2D with three input channels."
    : "A gray picture has a single plane.";
  const planes = usesPlanes();
  $("own-kernels-label").hidden = !planes;
  if (!planes && grids.length > 1) grids = [grids[0]];
  if (planes && knobs.ownKernels.checked && grids.length === 1) grids = CHANNEL_NAMES.map(() => grids[0].map((row) => [...row]));
  renderGrids();
  refresh();
}

async function uploadPicture(blob, name) {
  const form = new FormData();
  form.append("image", blob, name);
  showStatus(`Uploading ${name}…`);
  try {
    const response = await fetch("/api/lab/pictures", { method: "POST", body: form });
    const answer = await response.json();
    if (!response.ok) { showStatus(answer.detail ?? `The server answered ${response.status}`, true); return; }
    addPicture(answer);
    choosePicture(answer.id);
  } catch (error) {
    showStatus(`Could not reach the server: ${error.message}`, true);
  }
}

async function reduced(file) {                // at most UPLOAD_SIDE a side, upright (browsers apply EXIF)
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, UPLOAD_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = element("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

$("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";                    // choosing the same file again still fires "change"
  if (!file) return;
  const picture = await reduced(file).catch(() => file);   // not decodable here: the server says what is wrong
  uploadPicture(picture, file.name);
});

const pad = $("draw-pad");
const pen = pad.getContext("2d");
let lastPoint = null;

function clearDrawing() {
  pen.fillStyle = "#ffffff";
  pen.fillRect(0, 0, pad.width, pad.height);
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return { x: (event.clientX - box.left) * (pad.width / box.width), y: (event.clientY - box.top) * (pad.height / box.height) };
}

function strokeTo(point) {
  pen.beginPath();
  pen.moveTo(lastPoint.x, lastPoint.y);
  pen.lineTo(point.x, point.y);
  pen.stroke();
  lastPoint = point;
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  Object.assign(pen, { strokeStyle: "#000000", lineWidth: INK_WIDTH, lineCap: "round", lineJoin: "round" });
  lastPoint = padPoint(event);
  strokeTo({ x: lastPoint.x + 0.01, y: lastPoint.y });   // a tap leaves a dot
});
pad.addEventListener("pointermove", (event) => { if (lastPoint) strokeTo(padPoint(event)); });
for (const end of ["pointerup", "pointercancel"]) pad.addEventListener(end, () => { lastPoint = null; });

$("draw-toggle").addEventListener("click", () => {
  const box = $("draw-box");
  box.hidden = !box.hidden;
  $("draw-toggle").setAttribute("aria-expanded", String(!box.hidden));
});
$("draw-clear").addEventListener("click", clearDrawing);
$("draw-use").addEventListener("click", () => pad.toBlob((blob) => uploadPicture(blob, "drawing"), "image/png"));

// --- the course's examples ------------------------------------------------------------------------

const PRESETS = {
  strides: { kernel: "box", size: 3, stride: [2, 1], padding: "valid", pool: "" },
  blur: { kernel: "box", size: 5, stride: [1, 1], padding: "valid", pool: "" },
  same: { kernel: "box", size: 3, stride: [1, 1], padding: "same", pool: "" },
  pool: { kernel: "none", size: 3, stride: [1, 1], padding: "valid", pool: "max", poolSize: 5 },
  colour: { picture: "photo-colour", colour: "sum", own: COLOUR_PRESET_KERNELS, stride: [1, 1], padding: "valid", pool: "" },
};

function applyPreset(name) {
  const preset = PRESETS[name];
  knobs.picture.value = preset.picture ?? "photo";
  knobs.colour.value = preset.colour ?? "gray";
  [knobs.strideRows.value, knobs.strideCols.value] = preset.stride;
  knobs.padding.value = preset.padding;
  knobs.poolKind.value = preset.pool;
  knobs.poolSize.value = preset.poolSize ?? 2;
  $("pool-size-value").textContent = knobs.poolSize.value;
  knobs.ownKernels.checked = Boolean(preset.own);
  if (preset.own) {
    grids = preset.own.map((kernel) => namedKernels[kernel].weights["3"].map((row) => row.map(String)));
    knobs.kernelName.value = "custom";
  } else {
    grids = [grids[0]];
    setNamedKernel(preset.kernel, preset.size);
  }
  choosePicture(knobs.picture.value);
}

document.querySelectorAll("[data-preset]").forEach((button) =>
  button.addEventListener("click", () => applyPreset(button.dataset.preset)));

// --- the knobs ------------------------------------------------------------------------------------

knobs.picture.addEventListener("change", () => choosePicture(knobs.picture.value));
knobs.colour.addEventListener("change", () => choosePicture(knobs.picture.value));
knobs.ownKernels.addEventListener("change", () => {
  grids = knobs.ownKernels.checked ? CHANNEL_NAMES.map(() => grids[0].map((row) => [...row])) : [grids[0]];
  renderGrids();
  refresh();
});
knobs.kernelName.addEventListener("change", () => { setNamedKernel(knobs.kernelName.value, Number(knobs.kernelSize.value)); refresh(); });
knobs.kernelSize.addEventListener("input", () => { setNamedKernel(knobs.kernelName.value, Number(knobs.kernelSize.value)); refresh(); });
for (const knob of [knobs.kernelRows, knobs.kernelCols]) knob.addEventListener("input", () => { resizeGrids(); refresh(); });
knobs.poolSize.addEventListener("input", () => { $("pool-size-value").textContent = knobs.poolSize.value; refresh(); });
for (const knob of [knobs.strideRows, knobs.strideCols, knobs.padding, knobs.poolKind, knobs.cropTop, knobs.cropLeft,
  knobs.cropSize]) knob.addEventListener("input", refresh);

async function start() {
  try {
    const [kernels, available] = await Promise.all(["/api/lab/kernels", "/api/lab/pictures"].map(
      (address) => fetch(address).then((response) => response.json())));
    namedKernels = Object.fromEntries(kernels.map((kernel) => [kernel.name, kernel]));
    knobs.kernelName.replaceChildren(...kernels.map((kernel) => new Option(kernel.name, kernel.name)),
      new Option("custom (your numbers)", "custom"), new Option("none: pooling only", "none"));
    available.forEach(addPicture);
    grids = [[]];
    setNamedKernel("box", 3);
    const [height, width] = available[0].shape;
    knobs.cropTop.value = Math.round(height * 0.35);   // the course photo: an eye
    knobs.cropLeft.value = Math.round(width * 0.45);
    clearDrawing();
    choosePicture(available[0].id);
  } catch (error) {
    showStatus(`Could not reach the server: ${error.message}`, true);
  }
}

start();
