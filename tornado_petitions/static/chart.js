// The chart of a petition's signatures over time: uPlot (vendored, a classic
// script that sets window.uPlot) drawing the timeline endpoint's points, grown
// by one point per `counts` frame between reloads of the timeline.

const HEIGHT_PX = 220;
const BUCKET_SECONDS = { minute: 60, hour: 3600, day: 86_400 };
// A page left open for days still draws a bounded chart: the oldest live points go first.
const MAX_POINTS = 20_000;

/** The timeline's bucket for a petition of this age: enough points to show a shape, never too many. */
export function bucketFor(submittedAt, now = Date.now()) {
  const ageHours = (now - Date.parse(submittedAt)) / 3_600_000;
  if (ageHours < 72) return "minute";
  if (ageHours < 24 * 90) return "hour";
  return "day";
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const countFormat = new Intl.NumberFormat();

/**
 * One chart in `figure` (a <figure> holding `.chart-canvas` and a <figcaption>).
 * `figure.dataset.total` and `.points` say what it shows, for tests and tools;
 * the caption says it in words for everyone who cannot see the canvas.
 */
export class SignatureChart {
  constructor(figure, submittedAt) {
    this.figure = figure;
    this.canvas = figure.querySelector(".chart-canvas");
    this.caption = figure.querySelector("figcaption");
    this.start = Date.parse(submittedAt) / 1000;
    this.xs = [];
    this.ys = [];
    this.plot = null;
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.canvas);
  }

  /**
   * Replace everything with the timeline's points, then `current` (the count now) as the last point.
   * Each point is a bucket (`at` its start, `total` the count at its end): the line holds the
   * previous total up to the bucket's start and reaches `total` at its end (or now, if sooner).
   */
  setTimeline(points, current, bucket = "minute") {
    const length = BUCKET_SECONDS[bucket] || 60;
    const now = Date.now() / 1000;
    this.xs = [this.start];
    this.ys = [0];
    const add = (at, total) => {
      const last = this.xs.length - 1;
      if (at > this.xs[last]) {
        this.xs.push(at);
        this.ys.push(total);
      } else {
        this.ys[last] = total;
      }
    };
    let previous = 0;
    for (const point of points) {
      const begins = Date.parse(point.at) / 1000;
      if (begins > this.xs[this.xs.length - 1]) add(begins, previous);
      add(Math.min(begins + length, now), point.total);
      previous = point.total;
    }
    this.push(current);
  }

  /** Add the count as of now (a counts frame, an event, a signature of ours). */
  push(total, at = Date.now() / 1000) {
    const last = this.xs.length - 1;
    if (last >= 0 && this.ys[last] === total) {
      // Unchanged: keep the line flat up to now instead of adding points.
      if (last > 0 && this.ys[last - 1] === total) this.xs[last] = Math.max(this.xs[last], at);
      else if (at > this.xs[last]) {
        this.xs.push(at);
        this.ys.push(total);
      }
    } else if (last >= 0 && at <= this.xs[last]) {
      this.ys[last] = total;
    } else {
      this.xs.push(at);
      this.ys.push(total);
    }
    if (this.xs.length > MAX_POINTS) {
      this.xs.splice(1, this.xs.length - MAX_POINTS);
      this.ys.splice(1, this.ys.length - MAX_POINTS);
    }
    this.draw();
  }

  draw() {
    const total = this.ys.length ? this.ys[this.ys.length - 1] : 0;
    this.figure.dataset.total = String(total);
    this.figure.dataset.points = String(this.xs.length);
    const since = this.xs.length ? timeFormat.format(new Date(this.xs[0] * 1000)) : "";
    this.caption.textContent = `${countFormat.format(total)} ${total === 1 ? "signature" : "signatures"} ` +
      `since ${since}; last counted ${timeFormat.format(new Date())}.`;
    if (!window.uPlot) return; // the library failed to load: the caption still says it
    if (!this.plot) {
      this.plot = new window.uPlot(this.options(), [this.xs, this.ys], this.canvas);
    } else {
      this.plot.setData([this.xs, this.ys]);
    }
  }

  options() {
    return {
      width: this.width(),
      height: HEIGHT_PX,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      // At least a minute wide (padded before the first point, never into the future), so a new
      // petition's first seconds do not fill the axis with milliseconds.
      scales: { x: { time: true, range: (_u, min, max) => [Math.min(min, max - 60), max] }, y: { range: (_u, _min, max) => [0, Math.max(10, Math.ceil(max * 1.1))] } },
      axes: [
        { stroke: "#5a6272", grid: { stroke: "#e6e9ee" }, ticks: { stroke: "#d8dce3" } },
        { stroke: "#5a6272", grid: { stroke: "#e6e9ee" }, ticks: { stroke: "#d8dce3" }, size: 60 },
      ],
      series: [
        {},
        {
          label: "Signatures",
          stroke: "#1f5fbf",
          width: 2,
          fill: "rgba(31, 95, 191, 0.12)",
          points: { show: false },
        },
      ],
    };
  }

  width() {
    return Math.max(200, Math.floor(this.canvas.clientWidth || this.figure.clientWidth || 300));
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT_PX });
  }
}
