// cnnlab's draw-a-digit page: draw on the pad, and while drawing the picture goes to POST /api/predict
// (debounced); the answer fills the prediction, the bars, the 28×28 the model saw and the feature maps.
"use strict";

const DEBOUNCE_MS = 120;      // wait this long after the last stroke movement before asking the model...
const MAX_WAIT_MS = 350;      // ...but never longer than this while the pen keeps moving
const MAP_CHANNELS = 8;       // feature-map channels shown per conv layer
const PAD_COLOUR = "#0f172a"; // MNIST is light ink on a dark background; any pair works, the server measures contrast
const INK_COLOUR = "#f8fafc";

const pad = document.getElementById("pad");
const context = pad.getContext("2d");
const hint = document.getElementById("hint");
const preview = document.getElementById("upload-preview");
const statusLine = document.getElementById("status");
const labelBox = document.getElementById("label");
const classNameLine = document.getElementById("class-name");
const confidenceLine = document.getElementById("confidence");
const bars = document.getElementById("bars");
const seen = document.getElementById("seen");
const mapsBox = document.getElementById("maps");

let classNames = [];
let drawing = false;
let lastPoint = null;
let hasInk = false;
let debounceTimer = 0;
let firstChangeAt = 0;
let requestNumber = 0;        // answers to older requests than the latest one shown are dropped

// --- the model ------------------------------------------------------------------------------

async function loadModel() {
  try {
    const response = await fetch("/api/model");
    const model = await response.json();
    classNames = model.class_names;
    const params = model.summary.total_params.toLocaleString("en-US");
    const shape = model.input_shape.join("×");
    document.getElementById("model-line").textContent =
      `model ${model.name} · trained on ${model.dataset ?? "a custom dataset"} · input ${shape} · ${params} parameters`;
    const noun = { mnist: "a digit", "fashion-mnist": "a piece of clothing" }[model.dataset] ?? "something";
    document.getElementById("title").textContent = `Draw ${noun}`;
    document.getElementById("hint-text").textContent = `Draw ${noun} here`;
    document.getElementById("seen-note").textContent =
      `${model.input_shape[0]}×${model.input_shape[1]} pixels` +
      (model.dataset === "mnist" ? ": cropped, fitted in 20×20, centred by mass, as MNIST's digits" : "");
    showBars(null);
  } catch (error) {
    showStatus(`Could not reach the server: ${error.message}`, true);
  }
}

// --- drawing --------------------------------------------------------------------------------

function clearPad() {
  context.fillStyle = PAD_COLOUR;
  context.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
  preview.hidden = true;
  preview.removeAttribute("src");
  hint.hidden = false;
  requestNumber += 1;
  clearTimeout(debounceTimer);
  firstChangeAt = 0;
  showIdle();
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return { x: (event.clientX - box.left) * (pad.width / box.width), y: (event.clientY - box.top) * (pad.height / box.height) };
}

function strokeTo(point) {
  context.beginPath();
  context.moveTo(lastPoint.x, lastPoint.y);
  context.lineTo(point.x, point.y);
  context.stroke();
  lastPoint = point;
}

pad.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  if (!preview.hidden) clearPad();           // drawing after an upload starts a new picture
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  hasInk = true;
  hint.hidden = true;
  context.strokeStyle = INK_COLOUR;
  context.lineWidth = pad.width / 14;        // about MNIST's stroke width once the digit is 20 px tall
  context.lineCap = "round";
  context.lineJoin = "round";
  lastPoint = padPoint(event);
  strokeTo({ x: lastPoint.x + 0.01, y: lastPoint.y });  // a tap leaves a dot
  schedulePrediction();
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const each of events.length ? events : [event]) strokeTo(padPoint(each));
  schedulePrediction();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  schedulePrediction();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", clearPad);
document.addEventListener("keydown", (event) => { if (event.key === "Escape") clearPad(); });

document.getElementById("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  event.target.value = "";                   // choosing the same file again still fires "change"
  if (!file) return;
  clearPad();
  hint.hidden = true;
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  predict(file, file.name);
});

// --- asking the model ------------------------------------------------------------------------

function schedulePrediction() {
  const now = performance.now();
  if (!firstChangeAt) firstChangeAt = now;
  clearTimeout(debounceTimer);
  const wait = Math.max(0, Math.min(DEBOUNCE_MS, firstChangeAt + MAX_WAIT_MS - now));
  debounceTimer = setTimeout(() => {
    firstChangeAt = 0;
    if (hasInk) pad.toBlob((blob) => predict(blob, "drawing.png"), "image/png");
  }, wait);
}

async function predict(picture, name) {
  const number = ++requestNumber;
  const form = new FormData();
  form.append("image", picture, name);
  try {
    const response = await fetch(`/api/predict?maps=${MAP_CHANNELS}`, { method: "POST", body: form });
    const answer = await response.json();
    if (number !== requestNumber) return;    // a newer drawing is on its way
    if (response.status === 422) { showIdle(); showStatus("Nothing to see yet: the picture looks blank."); return; }
    if (!response.ok) { showStatus(answer.detail ?? `The server answered ${response.status}`, true); return; }
    showAnswer(answer);
  } catch (error) {
    if (number === requestNumber) showStatus(`Could not reach the server: ${error.message}`, true);
  }
}

// --- showing the answer ---------------------------------------------------------------------

function showStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function showIdle() {
  labelBox.textContent = "?";
  labelBox.className = "label idle";
  classNameLine.textContent = "waiting for a drawing";
  confidenceLine.textContent = "";
  showBars(null);
  seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
  mapsBox.innerHTML = '<p class="note">They appear once you draw.</p>';
  showStatus("");
}

function showBars(probabilities) {
  const top = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  if (bars.children.length !== classNames.length) {
    bars.replaceChildren(...classNames.map((name) => {
      const row = document.createElement("li");
      row.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>';
      row.querySelector(".name").textContent = name;
      row.querySelector(".name").title = name;
      return row;
    }));
  }
  classNames.forEach((_, index) => {
    const row = bars.children[index];
    const value = probabilities ? probabilities[index] : 0;
    row.classList.toggle("top", index === top);
    row.querySelector(".fill").style.width = `${(100 * value).toFixed(1)}%`;
    row.querySelector(".pct").textContent = probabilities ? `${(100 * value).toFixed(1)}%` : "–";
  });
}

function showAnswer(answer) {
  const name = answer.class_name;
  labelBox.textContent = name;
  labelBox.className = name.length > 2 ? "label long" : "label";
  const probability = answer.probabilities[answer.label];
  classNameLine.textContent = name.length > 2 ? "predicted class" : `predicted: ${name}`;
  confidenceLine.textContent = `${(100 * probability).toFixed(1)}% sure`;
  showBars(answer.probabilities);
  showSeen(answer.input_28x28);
  showMaps(answer.feature_maps ?? []);
  showStatus("");
}

function showSeen(rows) {
  const height = rows.length;
  const width = rows[0].length;
  seen.width = width;
  seen.height = height;
  const image = new ImageData(width, height);
  rows.forEach((row, y) => row.forEach((value, x) => {
    const [red, green, blue] = Array.isArray(value) ? value : [value, value, value];
    image.data.set([red, green, blue, 255], 4 * (y * width + x));
  }));
  seen.getContext("2d").putImageData(image, 0, 0);
}

function showMaps(layers) {
  mapsBox.replaceChildren(...layers.map((layer) => {
    const figure = document.createElement("figure");
    figure.className = "map-layer";
    const caption = document.createElement("figcaption");
    const [height, width, channels] = layer.shape;
    caption.innerHTML = "<code></code> <span></span>";
    caption.querySelector("code").textContent = layer.layer;
    caption.querySelector("span").textContent =
      `${height}×${width}×${channels} · channels 1–${layer.tiles.length} of ${channels}`;
    const tiles = document.createElement("div");
    tiles.className = "tiles";
    layer.tiles.forEach((source, index) => {
      const tile = new Image();
      tile.src = source;
      tile.alt = `${layer.layer}, channel ${index + 1}`;
      tile.title = tile.alt;
      tiles.append(tile);
    });
    figure.append(caption, tiles);
    return figure;
  }));
  if (!layers.length) mapsBox.innerHTML = '<p class="note">This model has no convolution layers.</p>';
}

clearPad();
loadModel();
