"use strict";
// The page's behaviour: live probability bars and timeline of the stream (server-sent events from
// /events), and photo analysis (POST /api/predict). Everything shown is built with DOM calls, never
// with HTML strings. Settings come from the server: {emotions, colors, eventsUrl (null when there is
// no stream), predictUrl}.
const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
const EMOTIONS = CONFIG.emotions;
const COLORS = CONFIG.colors;

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function note(text, className = "note") {
  return el("p", {className, textContent: text});
}

// One face: a title and a bar per emotion, the probabilities in [0, 1].
function faceCard(title, probabilities) {
  const rows = EMOTIONS.map((name) => {
    const percent = `${(100 * probabilities[name]).toFixed(1)}%`;
    const fill = el("i");
    fill.style.width = percent;
    fill.style.background = COLORS[name];
    return el("div", {className: "bar"}, [el("span", {textContent: name}), el("span", {}, [fill]),
                                          el("span", {textContent: percent})]);
  });
  return el("div", {className: "face"}, [el("strong", {textContent: title}), ...rows]);
}

function startLivePanel() {
  const liveFaces = document.getElementById("live-faces");
  const timeline = document.getElementById("timeline");
  const history = [];  // [time in ms, dominant emotion or null], the last minute
  document.getElementById("legend").append(...EMOTIONS.map((name) => {
    const swatch = el("i");
    swatch.style.background = COLORS[name];
    return el("span", {}, [swatch, name]);
  }));

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
    liveFaces.replaceChildren(...(faces.length
      ? faces.map((f) => faceCard(`Face ${f.id}: ${f.emotion}`, f.probabilities))
      : [note("No face in this frame.")]));
    history.push([Date.now(), faces.length ? faces[0].emotion : null]);  // faces[0] is the largest
    drawTimeline();
  };
  events.addEventListener("end", (message) => {
    liveFaces.replaceChildren(note(JSON.parse(message.data).error, "message"));
    events.close();
  });
}

function startPhotoForm() {
  const input = document.getElementById("photo-input");
  const canvas = document.getElementById("photo-canvas");
  const facesBox = document.getElementById("photo-faces");
  const errorBox = document.getElementById("photo-error");

  async function analyse(file) {
    const body = new FormData();
    body.append("image", file);
    const response = await fetch(CONFIG.predictUrl, {method: "POST", body});
    const answer = await response.json().catch(() => ({error: `the server answered ${response.status}`}));
    if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
    return answer;
  }

  function draw(image, answer) {
    canvas.width = answer.width;
    canvas.height = answer.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0, answer.width, answer.height);
    context.lineWidth = Math.max(2, Math.round(answer.height / 300));
    const fontSize = Math.max(14, Math.round(answer.height / 40));
    context.font = `${fontSize}px sans-serif`;
    answer.faces.forEach((face, i) => {
      const [x, y, w, h] = face.box;
      const label = `${i + 1}: ${face.emotion}`;
      const top = Math.max(0, y - fontSize - 6);
      context.strokeStyle = context.fillStyle = COLORS[face.emotion];
      context.strokeRect(x, y, w, h);
      context.fillRect(x, top, context.measureText(label).width + 8, fontSize + 6);
      context.fillStyle = "#000";
      context.fillText(label, x + 4, top + fontSize);
    });
    canvas.style.display = "block";
  }

  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    errorBox.textContent = "";
    facesBox.replaceChildren();
    canvas.style.display = "none";
    try {
      const answer = await analyse(file);
      facesBox.append(...answer.faces.map((face, i) => faceCard(`Face ${i + 1}: ${face.emotion}`, face.probabilities)));
      if (answer.faces.length === 0) errorBox.textContent = "No face found in this photo.";
      try {
        draw(await createImageBitmap(file, {imageOrientation: "from-image"}), answer);
      } catch {
        // a format the server reads but this browser cannot show (TIFF): the results stand without the picture
      }
    } catch (error) {
      errorBox.textContent = `Cannot analyse this file: ${error.message}`;
    }
  });
}

if (CONFIG.eventsUrl) startLivePanel();
startPhotoForm();
