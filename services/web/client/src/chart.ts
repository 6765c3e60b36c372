// A small live line chart on a canvas (no library): source bitrate and frame rate over the last 30 s.
export interface Series {
  name: string;
  color: string;
  /** Values are scaled to this series' own maximum, shown in the legend. */
  unit: string;
}

export class LiveChart {
  private readonly samples: number[][] = [];
  private received = 0;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly series: Series[],
    private readonly capacity = 150,
  ) {
    this.draw();
  }

  push(values: number[]): void {
    this.samples.push(values);
    if (this.samples.length > this.capacity) this.samples.shift();
    this.received++;
    // Tests (and curious people) can see the chart move without reading pixels.
    this.canvas.dataset.points = String(this.received);
    this.canvas.dataset.last = values.join(',');
    this.draw();
  }

  private draw(): void {
    const ratio = window.devicePixelRatio || 1;
    const width = this.canvas.clientWidth || 600;
    const height = this.canvas.clientHeight || 160;
    if (this.canvas.width !== width * ratio) {
      this.canvas.width = width * ratio;
      this.canvas.height = height * ratio;
    }
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = '#2a2f3a';
    ctx.lineWidth = 1;
    for (let i = 1; i < 4; i++) {
      const y = Math.round((height * i) / 4) + 0.5;
      ctx.beginPath();
      ctx.moveTo(0, y);
      ctx.lineTo(width, y);
      ctx.stroke();
    }
    const step = width / (this.capacity - 1);
    const offset = this.capacity - this.samples.length;
    ctx.font = '12px system-ui, sans-serif';
    this.series.forEach((s, i) => {
      const values = this.samples.map((v) => v[i] ?? 0);
      const max = Math.max(1, ...values) * 1.15;
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      values.forEach((v, j) => {
        const x = (offset + j) * step;
        const y = height - 4 - (v / max) * (height - 24);
        if (j === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
      const last = values.at(-1);
      ctx.fillStyle = s.color;
      ctx.fillText(`${s.name}: ${last === undefined ? '-' : Math.round(last)} ${s.unit}`, 8 + i * 160, 14);
    });
  }
}
