// The face tracker (tracking.FaceTracker): each face's id kept from frame to frame (greedy matching on overlap,
// else on the distance to where the track's velocity puts it), its probabilities smoothed with a half-life,
// lost tracks kept a while. A leaf: it imports nothing.

function iou(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const union = a[2] * a[3] + b[2] * b[3] - ix * iy;
  return union > 0 ? ix * iy / union : 0;
}

const centre = (box) => [box[0] + box[2] / 2, box[1] + box[3] / 2];

export class FaceTracker {
  constructor({halfLife, minIou = 0.3, maxMissed, keepSeconds}) {
    Object.assign(this, {halfLife, minIou, maxMissed, keepSeconds, tracks: [], nextId: 1});
  }

  predicted(track, dt) {
    const elapsed = track.lostTime + Math.max(dt, 0), [x, y, w, h] = track.box;
    return [x + track.velocity[0] * elapsed, y + track.velocity[1] * elapsed, w, h];
  }

  affinity(box, track, dt) {
    const predicted = this.predicted(track, dt), overlap = iou(box, predicted);
    if (overlap >= this.minIou) return overlap;
    const side = Math.max(predicted[2], 1);
    if (!(1 / 1.5 <= box[2] / side && box[2] / side <= 1.5)) return 0;
    const [bx, by] = centre(box), [px, py] = centre(predicted);
    const distance = Math.hypot(bx - px, by - py) / (0.75 * side);
    return distance < 1 ? this.minIou * (1 - distance) * 0.99 : 0;
  }

  match(boxes, dt) {  // greedy, best affinity first (ties: the later box and track first, as Python's sort)
    const pairs = [];
    boxes.forEach((box, i) => this.tracks.forEach((track, j) => pairs.push([this.affinity(box, track, dt), i, j])));
    pairs.sort((p, q) => q[0] - p[0] || q[1] - p[1] || q[2] - p[2]);
    const assignment = new Map(), taken = new Set();
    for (const [affinity, i, j] of pairs) {
      if (affinity <= 0) break;
      if (!assignment.has(i) && !taken.has(j)) { taken.add(j); assignment.set(i, j); }
    }
    return assignment;
  }

  // The id of the track each box would continue if update() got these boxes now, null for a new one.
  trackIds(boxes, dt) {
    const match = this.match(boxes, dt);
    return boxes.map((box, i) => (match.has(i) ? this.tracks[match.get(i)].id : null));
  }

  // faces: [{box, probabilities, score}] of one frame (probabilities null: not classified on this frame, the
  // track's kept); dt: seconds since the previous frame.
  update(faces, dt) {
    const match = this.match(faces.map((f) => f.box), dt);
    const assignment = new Map([...match].map(([i, j]) => [i, this.tracks[j]]));
    const continued = new Set(match.values());
    this.tracks.forEach((track, j) => {
      if (!continued.has(j)) {
        track.missed += 1;
        track.unclassifiedTime += Math.max(dt, 0);
        track.lostTime += Math.max(dt, 0);
      }
    });
    this.tracks = this.tracks.filter((t) => t.missed <= this.maxMissed || t.lostTime <= this.keepSeconds);
    return faces.map((face, i) => {
      let track = assignment.get(i);
      if (!track && !face.probabilities) throw new Error("a face without probabilities continues no track");
      if (!track) {
        track = {id: this.nextId++, box: face.box, probabilities: Float32Array.from(face.probabilities), missed: 0,
                 unclassifiedTime: 0, velocity: [0, 0], lostTime: 0};
        this.tracks.push(track);
      } else if (!face.probabilities) {
        track.unclassifiedTime += Math.max(dt, 0);
      } else {
        const age = Math.max(dt, 0) + track.unclassifiedTime;
        const weight = this.halfLife <= 0 ? 1 : 1 - 0.5 ** (age / this.halfLife);
        track.probabilities = track.probabilities.map((p, k) => weight * face.probabilities[k] + (1 - weight) * p);
        track.unclassifiedTime = 0;
      }
      if (assignment.get(i)) {
        const elapsed = track.lostTime + Math.max(dt, 0);
        if (elapsed > 0) {
          const [x0, y0] = centre(track.box), [x1, y1] = centre(face.box);
          track.velocity = [0.5 * track.velocity[0] + 0.5 * (x1 - x0) / elapsed,
                            0.5 * track.velocity[1] + 0.5 * (y1 - y0) / elapsed];
        }
        Object.assign(track, {box: face.box, missed: 0, lostTime: 0});
      }
      return {...face, id: track.id, probabilities: track.probabilities};
    });
  }
}
