// rns ui: correcting a segmentation (regions, brush, classes added in the legend) and teaching it.
// Loaded before app.js, whose `state`, `$`, `api`, `busy`, `done`, `segment` and friends it uses when
// called; the corrections of a photo are kept by class name, so they survive any change of class list.
"use strict";

// The photo's corrections (all of them, taught or not) drawn over a fresh segmentation, so corrected
// regions stay in view after a teach. A corrected class missing from the list is added to the legend
// (and is taught); returns those names.
function applyCorrections() {
  const kept = [];
  const used = new Set();
  if (state.corrections) for (const c of state.corrections) if (c !== 255) used.add(c);
  const ids = state.correctionNames.map((name, index) => {
    let id = state.classes.indexOf(name);
    if (id < 0 && used.has(index)) { id = state.classes.push(name) - 1; kept.push(name); }
    return id;
  });
  const { corrections, labels, touched } = state;
  if (!corrections) return kept;
  for (let i = 0; i < corrections.length; i++) {
    const c = corrections[i];
    if (c !== 255 && ids[c] >= 0) { labels[i] = ids[c]; touched[i] = 1; }
  }
  return kept;
}

// Colours of the current class list from the server (by class name), for classes the page added.
async function fetchColours() {
  const form = new FormData();
  form.append("classes", state.classes.join(","));
  try {
    state.colours = (await api("/api/colours", form)).colours;
  } catch (_) { /* keep the fallback colours */ }
}

// ---------------------------------------------------------------------------------- correcting
function pixelAt(event) {
  const rect = $("overlay-canvas").getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * state.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * state.height);
  if (x < 0 || y < 0 || x >= state.width || y >= state.height) return null;
  return { x, y, index: y * state.width + x };
}

function correctPixel(index, nameIndex) {
  state.labels[index] = state.picked;
  state.touched[index] = 1;
  state.corrections[index] = nameIndex;
}

function pickedNameIndex() {
  const name = state.classes[state.picked];
  if (!state.correctionNames.includes(name)) state.correctionNames.push(name);
  return state.correctionNames.indexOf(name);
}

function assignRegion(index) {
  const region = state.regions[index];
  const { starts, pixels } = state.regionPixels;
  const nameIndex = pickedNameIndex();
  for (let k = starts[region]; k < starts[region + 1]; k++) correctPixel(pixels[k], nameIndex);
}

function paintBrush(x, y) {
  const radius = Number($("brush-size").value) / 2;
  const nameIndex = pickedNameIndex();
  for (let dy = -Math.ceil(radius); dy <= radius; dy++) {
    for (let dx = -Math.ceil(radius); dx <= radius; dx++) {
      const px = x + dx, py = y + dy;
      if (dx * dx + dy * dy > radius * radius || px < 0 || py < 0 || px >= state.width || py >= state.height) continue;
      correctPixel(py * state.width + px, nameIndex);
    }
  }
}

let painting = false;
function correctAt(event) {
  const at = pixelAt(event);
  if (!at || !state.labels || state.busy) return;
  if (state.picked < 0) {
    showError("pick a class in the legend (or add one) to correct with");
    return;
  }
  if (document.querySelector("input[name=tool]:checked").value === "regions") assignRegion(at.index);
  else paintBrush(at.x, at.y);
  showHover(at);
  drawOverlay();
}

function showHover(at) {
  if (at && state.labels) $("hover").textContent = `(${at.x}, ${at.y}): ${state.classes[state.labels[at.index]]}`;
}

async function addClass() {
  const name = splitClasses($("new-class").value)[0];
  if (!name || !state.labels) return;
  if (!state.classes.includes(name)) {
    state.classes.push(name);
    const typed = splitClasses($("classes").value);
    if (!typed.includes(name)) $("classes").value = [...typed, name].join(", ");
  }
  Object.assign(state, { picked: state.classes.indexOf(name), pickedName: name });
  $("new-class").value = "";
  showError("");
  await fetchColours();
  drawOverlay();
  renderLegend(state.lastSegment && state.lastSegment.fractions);
}

// ---------------------------------------------------------------------------------- teaching
async function teach() {
  if (!state.labels) return;
  showError("");
  const whole = $("whole-photo").checked;
  const classes = [...state.classes, ...state.correctionNames.filter((name) => !state.classes.includes(name))];
  const lookup = state.correctionNames.map((name) => classes.indexOf(name));
  const corrections = state.corrections;
  const ids = new Uint8Array(corrections.length);
  // Background is what no named class covers, never a class of the memory: its pixels stay unlabelled.
  const background = classes[0] === "background" ? 0 : -1;
  let corrected = 0;
  let labelled = 0;
  for (let i = 0; i < ids.length; i++) {
    const c = corrections[i];
    if (c !== 255) corrected++;
    ids[i] = c !== 255 ? lookup[c] : whole ? state.labels[i] : 255;
    if (ids[i] === background) ids[i] = 255;
    if (ids[i] !== 255) labelled++;
  }
  if (!whole && corrected === 0) {
    showError("nothing corrected yet: pick a class, click regions or paint, then teach");
    return;
  }
  if (labelled === 0) {
    showError("nothing to teach: background is not taught (it is what no named class covers); correct with a named class");
    return;
  }
  // A photo's support features are computed in the background after its first segment; a quick first
  // teach may still wait for them.
  busy(state.taught.length ? "Teaching…" : "Teaching (the photo's support features may still be computing)…");
  let result;
  try {
    // Name only the classes the mask labels: a taught mask replaces this photo's examples of every class
    // it names (as in `rns add-support`), so naming others would delete their examples of this photo.
    const used = [...new Set(ids)].filter((id) => id !== 255).sort((a, b) => a - b);
    const remap = new Uint8Array(256).fill(255);
    used.forEach((id, index) => { remap[id] = index; });
    const compact = ids.map((id) => remap[id]);
    const mask = await RnsPng.encodeGrey(state.width, state.height, compact);
    result = await requestWithPhoto("/api/teach", (form) => {
      form.append("mask", mask, "mask.png");
      form.append("classes", used.map((id) => classes[id]).join(","));
    });
  } catch (error) {
    done("");
    showError(error.message);
    return;
  }
  state.taught.push(corrections.slice());
  showMemory(result.memory);
  done(`Taught (${result.status}: ${result.classes.join(", ")}).`);
  await segment(`Taught (${result.status}) in ${result.seconds.toFixed(2)} s; segmenting again`);
}
