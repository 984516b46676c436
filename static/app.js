"use strict";
// Settings from the server: {emotions, colors, eventsUrl (null without a stream), predictUrl}
const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
const EMOTIONS = CONFIG.emotions;
const COLORS = CONFIG.colors;

function faceCard(title, probabilities) {
  const card = document.createElement("div");
  card.className = "face";
  const heading = document.createElement("strong");
  heading.textContent = title;
  card.appendChild(heading);
  for (const name of EMOTIONS) {
    const p = probabilities[name];
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span>${name}</span><span><i style="width:${(100 * p).toFixed(1)}%;background:${COLORS[name]}"></i></span><span>${(100 * p).toFixed(1)}%</span>`;
    card.appendChild(row);
  }
  return card;
}

if (CONFIG.eventsUrl) {
const liveFaces = document.getElementById("live-faces");
const timeline = document.getElementById("timeline");
const history = [];  // [time in ms, dominant emotion or null]
document.getElementById("legend").innerHTML =
  EMOTIONS.map(name => `<span><i style="background:${COLORS[name]}"></i>${name}</span>`).join("");

function drawTimeline() {
  const now = Date.now(), span = 60000, context = timeline.getContext("2d");
  while (history.length && history[0][0] < now - span) history.shift();
  context.clearRect(0, 0, timeline.width, timeline.height);
  history.forEach(([t, emotion], i) => {
    if (!emotion) return;
    const end = i + 1 < history.length ? history[i + 1][0] : now;
    const x0 = (t - now + span) / span * timeline.width, x1 = (end - now + span) / span * timeline.width;
    context.fillStyle = COLORS[emotion];
    context.fillRect(x0, 0, Math.max(1, x1 - x0), timeline.height);
  });
}

const events = new EventSource(CONFIG.eventsUrl);
events.onmessage = (message) => {
  const {faces} = JSON.parse(message.data);
  liveFaces.replaceChildren(...(faces.length ? faces.map(f => faceCard(`Face ${f.id ?? ""}: ${f.emotion}`, f.probabilities))
                                             : [Object.assign(document.createElement("p"), {className: "note", textContent: "No face in this frame."})]));
  history.push([Date.now(), faces.length ? faces[0].emotion : null]);  // faces[0] is the largest
  drawTimeline();
};
events.addEventListener("end", (message) => {
  liveFaces.replaceChildren(Object.assign(document.createElement("p"), {className: "message", textContent: JSON.parse(message.data).error}));
  events.close();
});
}
const input = document.getElementById("photo-input");
const canvas = document.getElementById("photo-canvas");
const facesBox = document.getElementById("photo-faces");
const errorBox = document.getElementById("photo-error");

input.addEventListener("change", async () => {
  const file = input.files[0];
  if (!file) return;
  errorBox.textContent = "";
  facesBox.replaceChildren();
  canvas.style.display = "none";
  const body = new FormData();
  body.append("image", file);
  let answer;
  try {
    const response = await fetch(CONFIG.predictUrl, {method: "POST", body});
    answer = await response.json().catch(() => ({error: `the server answered ${response.status}`}));
    if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
  } catch (error) {
    errorBox.textContent = `Cannot analyse this file: ${error.message}`;
    return;
  }
  const image = await createImageBitmap(file, {imageOrientation: "from-image"});
  canvas.width = answer.width;
  canvas.height = answer.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0, answer.width, answer.height);
  const line = Math.max(2, Math.round(answer.height / 300));
  context.lineWidth = line;
  context.font = `${Math.max(14, Math.round(answer.height / 40))}px sans-serif`;
  answer.faces.forEach((face, i) => {
    const [x, y, w, h] = face.box;
    context.strokeStyle = "#2a7ae2";
    context.strokeRect(x, y, w, h);
    context.fillStyle = "#2a7ae2";
    const label = `${i + 1}: ${face.emotion}`;
    const height = parseInt(context.font) + 6;
    context.fillRect(x, Math.max(0, y - height), context.measureText(label).width + 8, height);
    context.fillStyle = "#fff";
    context.fillText(label, x + 4, Math.max(0, y - height) + height - 6);
    facesBox.appendChild(faceCard(`Face ${i + 1}: ${face.emotion}`, face.probabilities));
  });
  if (answer.faces.length === 0) errorBox.textContent = "No face found in this photo.";
  canvas.style.display = "block";
});
