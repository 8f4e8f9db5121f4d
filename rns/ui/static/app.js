// rns ui: open a photo, segment it, correct regions or paint, teach, and see the result at once.
// All state lives in `state`; the server keeps the photo's features, so the page sends a photo once
// and then names it by id (re-uploading only if the server has closed it meanwhile).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  file: null, photo: null, width: 0, height: 0,
  classes: [], labels: null, touched: null, regions: null, regionPixels: null,
  // Corrections accumulate per photo across teaches, by class name (ids change with the class list):
  // teaching a photo again replaces its example in the memory, so it must carry every earlier fix too.
  corrections: null, correctionNames: [], taught: [],
  // The class to correct with is kept by name (`pickedName`); `picked` is its id in the current list, -1
  // when the list no longer has it. Colours come from the server by class name (the same as in files).
  picked: 1, pickedName: null, colours: [], palette: [], busy: false, folder: [], folderIndex: -1,
  lastSegment: null,
};
window.rnsUi = state; // for the browser tests and for debugging in the console

// ---------------------------------------------------------------------------------- status and errors
let timer = null;
function busy(message) {
  state.busy = true;
  document.body.dataset.state = "busy";
  const started = performance.now();
  $("progress").hidden = false;
  const tick = () => { $("status-text").textContent = `${message} ${((performance.now() - started) / 1000).toFixed(1)} s`; };
  tick();
  timer = setInterval(tick, 100);
  updateButtons();
}
function done(message) {
  clearInterval(timer);
  state.busy = false;
  $("progress").hidden = true;
  $("status-text").textContent = message;
  document.body.dataset.state = "idle";
  updateButtons();
}
function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}
function updateButtons() {
  $("segment-btn").disabled = state.busy || !state.file;
  $("teach-btn").disabled = state.busy || !state.labels;
  $("undo-btn").disabled = state.busy || !(state.undoSteps > 0);
}

// One request; any failure becomes an Error carrying the server's one-line message.
async function api(path, form, method = "POST") {
  let response;
  try {
    response = await fetch(path, method === "GET" ? {} : { method, body: form });
  } catch (error) {
    throw new Error(`the rns ui server did not answer (${error.message}); is it still running?`);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const error = new Error(body && body.error ? body.error : `request failed with status ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---------------------------------------------------------------------------------- opening photos
async function openFile(file, fromFolder = false) {
  showError("");
  if (!fromFolder) { // an uploaded or dropped photo is not the folder's: the picker names none
    state.folderIndex = -1;
    $("folder-select").value = "";
  }
  busy(`Opening ${file.name}…`);
  try {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("regions", "true");
    const opened = await api("/api/open", form);
    Object.assign(state, { file, photo: opened.photo, width: opened.width, height: opened.height,
      labels: null, touched: null, lastSegment: null, correctionNames: [], taught: [],
      corrections: new Uint8Array(opened.width * opened.height).fill(255) });
    setRegions(await RnsPng.decodeRegions(opened.regions));
    await drawPhoto(file);
    drawOverlay();
    renderLegend();
    done(`${file.name}: ${opened.width}x${opened.height}. Type classes and press Segment.`);
  } catch (error) {
    done("");
    showError(error.message);
    return;
  }
  if (splitClasses($("classes").value).length) await segment();
}

function setRegions(regions) {
  state.regions = regions;
  // Pixels of each region, grouped by a counting sort, so a click assigns a region in one pass.
  let count = 0;
  for (const id of regions) count = Math.max(count, id + 1);
  const starts = new Uint32Array(count + 1);
  for (const id of regions) starts[id + 1]++;
  for (let i = 0; i < count; i++) starts[i + 1] += starts[i];
  const fill = starts.slice(0, count);
  const pixels = new Uint32Array(regions.length);
  regions.forEach((id, index) => { pixels[fill[id]++] = index; });
  state.regionPixels = { starts, pixels };
}

async function drawPhoto(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  for (const canvas of [$("photo-canvas"), $("overlay-canvas")]) {
    canvas.width = state.width;
    canvas.height = state.height;
  }
  $("photo-canvas").getContext("2d").drawImage(bitmap, 0, 0, state.width, state.height);
}

// ---------------------------------------------------------------------------------- segmenting
function splitClasses(text) {
  return text.split(",").map((name) => name.trim().replace(/\s+/g, " ")).filter((name) => name);
}

async function segment(reason = "Segmenting") {
  if (!state.photo) return;
  showError("");
  busy(`${reason}…`);
  try {
    const result = await requestWithPhoto("/api/segment", (form) => form.append("classes", $("classes").value));
    state.classes = result.classes.slice();
    state.colours = result.colours.slice();
    state.labels = await RnsPng.decodeIds(result.labels);
    state.touched = new Uint8Array(state.labels.length);
    state.lastSegment = result;
    state.predicted = state.labels.slice(); // the model's own answer, before the corrections are drawn
    const kept = applyCorrections();
    if (kept.length) await fetchColours();
    if (state.pickedName === null) state.pickedName = state.classes[Math.min(1, state.classes.length - 1)];
    state.picked = state.classes.indexOf(state.pickedName);
    drawOverlay();
    renderLegend(result.fractions);
    const how = result.computed_features ? "computed this photo's features" : "reused this photo's features";
    const what = result.mode === "zero-shot" ? "text only: the memory has no examples of these classes"
      : `adapted to the memory's examples (${result.memory_prototypes} prototypes)`;
    let note = kept.length ? ` Your corrections of ${kept.join(", ")} are kept (not in the class list; Teach teaches them).` : "";
    if (state.picked < 0) note += ` "${state.pickedName}" is not in the list any more: pick a class in the legend to correct.`;
    done(`Segmented in ${result.seconds.toFixed(2)} s (${how}; ${what}).${note}`);
  } catch (error) {
    done("");
    showError(error.message);
  }
}

// Send the photo by id; if the server no longer holds it, upload it again once.
async function requestWithPhoto(path, addFields) {
  const byId = new FormData();
  byId.append("photo", state.photo);
  addFields(byId);
  try {
    return await api(path, byId);
  } catch (error) {
    if (error.status !== 404 || !state.file) throw error;
    const withFile = new FormData();
    withFile.append("image", state.file, state.file.name);
    addFields(withFile);
    return api(path, withFile);
  }
}

// ---------------------------------------------------------------------------------- drawing
function colour(id) {
  const hex = state.colours[id] || state.palette[id] || "#808080";
  return [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));
}

let drawQueued = false;
function drawOverlay() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => { drawQueued = false; paintOverlay(); });
}
function paintOverlay() {
  const canvas = $("overlay-canvas");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.labels || !$("show-overlay").checked) return;
  const image = context.createImageData(state.width, state.height);
  const alpha = Math.round(2.55 * Number($("opacity").value));
  const colours = state.classes.map((_, id) => colour(id));
  const { labels, touched, regions, width } = state;
  const edges = regions && document.querySelector("input[name=tool]:checked").value === "regions";
  for (let i = 0; i < labels.length; i++) {
    const id = labels[i];
    const o = 4 * i;
    const edge = edges && ((i % width < width - 1 && regions[i] !== regions[i + 1]) ||
      (i + width < labels.length && regions[i] !== regions[i + width]));
    if (edge) { image.data.set([255, 255, 255, 90], o); continue; }
    if (state.classes[id] === "background" && !touched[i]) continue; // background stays see-through
    const [r, g, b] = colours[id] || [128, 128, 128];
    image.data.set([r, g, b, touched[i] ? Math.min(255, alpha + 60) : alpha], o);
  }
  context.putImageData(image, 0, 0);
}

function renderLegend(fractions) {
  const legend = $("legend");
  legend.replaceChildren();
  state.classes.forEach((name, id) => {
    const item = document.createElement("li");
    item.dataset.classId = String(id);
    item.dataset.className = name;
    item.className = id === state.picked ? "picked" : "";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = state.colours[id] || state.palette[id] || "#808080";
    const share = fractions && name in fractions ? ` ${(100 * fractions[name]).toFixed(1)}%` : "";
    item.append(swatch, document.createTextNode(`${name}${share}`));
    item.title = "click to correct with this class";
    item.addEventListener("click", () => {
      Object.assign(state, { picked: id, pickedName: name });
      showError("");
      renderLegend(fractions);
    });
    legend.append(item);
  });
}

async function undo() {
  showError("");
  busy("Undoing the last teach…");
  try {
    const result = await api("/api/undo", new FormData());
    if (result.source_id === state.photo) {
      // The memory holds this photo's previous example again: so do the page's corrections.
      state.taught.pop();
      const previous = state.taught[state.taught.length - 1];
      state.corrections = previous ? previous.slice() : new Uint8Array(state.corrections.length).fill(255);
    }
    showMemory(result.memory);
    done(`Undone (${result.undone} the example of ${result.photo}).`);
  } catch (error) {
    done("");
    showError(error.message);
    return;
  }
  if (state.photo) await segment("Segmenting again");
}

// ---------------------------------------------------------------------------------- memory panel
function showMemory(memory) {
  state.memory = memory;
  state.undoSteps = memory.undo_steps;
  $("memory-path").textContent = `${memory.path}: ${memory.photos} photo(s), ${memory.prototypes} prototype(s)`;
  const list = $("memory-list");
  list.replaceChildren();
  for (const entry of memory.classes) {
    const item = document.createElement("li");
    item.dataset.className = entry.name;
    item.dataset.prototypes = String(entry.prototypes);
    const text = document.createElement("span");
    text.textContent = `${entry.name}: ${entry.prototypes} in ${entry.photos} photo(s)`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = `remove ${entry.name} and all its examples from the memory`;
    remove.addEventListener("click", () => removeClass(entry.name));
    item.append(text, remove);
    list.append(item);
  }
  updateButtons();
}

async function removeClass(name) {
  if (!window.confirm(`Remove "${name}" and all its examples from the memory?`)) return;
  const form = new FormData();
  form.append("name", name);
  try {
    showMemory(await api("/api/memory/remove", form));
  } catch (error) {
    showError(error.message);
  }
}

// ---------------------------------------------------------------------------------- folder
async function openFolderImage(index) {
  if (index < 0 || index >= state.folder.length) return;
  state.folderIndex = index;
  $("folder-select").value = state.folder[index];
  const name = state.folder[index];
  try {
    const response = await fetch(`/api/images/${encodeURIComponent(name)}`);
    if (!response.ok) throw new Error((await response.json()).error);
    const blob = await response.blob();
    await openFile(new File([blob], name, { type: blob.type }), true);
  } catch (error) {
    showError(error.message);
  }
}

// ---------------------------------------------------------------------------------- wiring
async function start() {
  try {
    const info = await api("/api/info", null, "GET");
    state.palette = info.palette;
    $("model-info").textContent = `${info.model} (${info.weights})`;
    showMemory(info.memory);
    if (info.images) {
      const listing = await api("/api/images", null, "GET");
      state.folder = listing.images;
      $("folder").hidden = false;
      $("folder-select").append(new Option("(choose a photo)", "", true, true));
      for (const name of listing.images) $("folder-select").append(new Option(name, name));
    }
  } catch (error) {
    showError(error.message);
  }
  updateButtons();
}

$("file-input").addEventListener("change", (event) => { if (event.target.files[0]) openFile(event.target.files[0]); });
const zone = $("drop-zone");
zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
// A photo dropped anywhere on the page opens (instead of the browser navigating away to the file).
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("over");
  if (event.dataTransfer.files[0]) openFile(event.dataTransfer.files[0]);
});
$("segment-btn").addEventListener("click", () => segment());
$("classes").addEventListener("keydown", (event) => { if (event.key === "Enter") segment(); });
$("teach-btn").addEventListener("click", teach);
$("undo-btn").addEventListener("click", undo);
$("add-class-btn").addEventListener("click", addClass);
$("new-class").addEventListener("keydown", (event) => { if (event.key === "Enter") addClass(); });
$("show-overlay").addEventListener("change", drawOverlay);
$("opacity").addEventListener("input", drawOverlay);
document.querySelectorAll("input[name=tool]").forEach((radio) => radio.addEventListener("change", drawOverlay));
$("folder-select").addEventListener("change", (event) => openFolderImage(state.folder.indexOf(event.target.value)));
$("prev-btn").addEventListener("click", () => openFolderImage(state.folderIndex - 1));
$("next-btn").addEventListener("click", () => openFolderImage(state.folderIndex + 1));
const overlay = $("overlay-canvas");
overlay.addEventListener("mousedown", (event) => { painting = true; correctAt(event); });
overlay.addEventListener("mousemove", (event) => {
  showHover(pixelAt(event));
  if (painting && document.querySelector("input[name=tool]:checked").value === "brush") correctAt(event);
});
window.addEventListener("mouseup", () => { painting = false; });
overlay.addEventListener("mouseleave", () => { $("hover").textContent = ""; });
start();
