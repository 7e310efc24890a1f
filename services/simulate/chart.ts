// The chart of a simulated campaign: per round, simulated minutes from scratch against
// correcting (bars, left axis) and F1 on the test images (line, right axis). Rendered
// as SVG and converted to PNG with sharp.
import sharp from "sharp";
import type { ReportRound } from "./report.js";

const W = 900;
const H = 480;
const M = { left: 70, right: 70, top: 60, bottom: 70 };

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);
}

export function chartSvg(rounds: ReportRound[], title: string): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const maxMinutes = Math.max(1, ...rounds.map((r) => Math.max(r.simulated_minutes_scratch, r.simulated_minutes_correction)));
  const yMin = (v: number) => M.top + plotH - (v / maxMinutes) * plotH;
  const yF1 = (v: number) => M.top + plotH - v * plotH;
  const slot = plotW / Math.max(1, rounds.length);
  const bar = Math.min(40, slot / 3);
  const parts: string[] = [
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="30" font-size="18" text-anchor="middle" font-family="sans-serif">${escapeXml(title)}</text>`,
    `<line x1="${M.left}" y1="${M.top + plotH}" x2="${M.left + plotW}" y2="${M.top + plotH}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + plotH}" stroke="black"/>`,
    `<line x1="${M.left + plotW}" y1="${M.top}" x2="${M.left + plotW}" y2="${M.top + plotH}" stroke="black"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (maxMinutes * i) / 4;
    const y = yMin(v);
    parts.push(`<line x1="${M.left - 5}" y1="${y}" x2="${M.left + plotW}" y2="${y}" stroke="#ddd"/>`);
    parts.push(`<text x="${M.left - 8}" y="${y + 4}" font-size="12" text-anchor="end" font-family="sans-serif">${v.toFixed(0)}</text>`);
    parts.push(`<text x="${M.left + plotW + 8}" y="${yF1(i / 4) + 4}" font-size="12" font-family="sans-serif">${(i / 4).toFixed(2)}</text>`);
  }
  parts.push(`<text x="20" y="${M.top + plotH / 2}" font-size="13" font-family="sans-serif" transform="rotate(-90 20 ${M.top + plotH / 2})" text-anchor="middle">simulated minutes</text>`);
  parts.push(`<text x="${W - 15}" y="${M.top + plotH / 2}" font-size="13" font-family="sans-serif" transform="rotate(90 ${W - 15} ${M.top + plotH / 2})" text-anchor="middle">F1 on the test images</text>`);
  const points: string[] = [];
  rounds.forEach((r, i) => {
    const cx = M.left + slot * (i + 0.5);
    const yS = yMin(r.simulated_minutes_scratch);
    const yC = yMin(r.simulated_minutes_correction);
    parts.push(`<rect x="${cx - bar - 2}" y="${yS}" width="${bar}" height="${M.top + plotH - yS}" fill="#9aa5b1"/>`);
    parts.push(`<rect x="${cx + 2}" y="${yC}" width="${bar}" height="${M.top + plotH - yC}" fill="#2f80ed"/>`);
    parts.push(`<text x="${cx}" y="${M.top + plotH + 20}" font-size="12" text-anchor="middle" font-family="sans-serif">round ${r.round}</text>`);
    parts.push(`<text x="${cx}" y="${M.top + plotH + 36}" font-size="11" text-anchor="middle" font-family="sans-serif" fill="#555">${r.images_corrected} corrected</text>`);
    if (r.f1 !== null) points.push(`${cx},${yF1(r.f1)}`);
  });
  if (points.length) {
    parts.push(`<polyline points="${points.join(" ")}" fill="none" stroke="#eb5757" stroke-width="3"/>`);
    for (const p of points) {
      const [x, y] = p.split(",");
      parts.push(`<circle cx="${x}" cy="${y}" r="5" fill="#eb5757"/>`);
    }
  }
  const legendY = H - 18;
  parts.push(`<rect x="${M.left}" y="${legendY - 10}" width="12" height="12" fill="#9aa5b1"/><text x="${M.left + 18}" y="${legendY}" font-size="12" font-family="sans-serif">from scratch (simulated)</text>`);
  parts.push(`<rect x="${M.left + 200}" y="${legendY - 10}" width="12" height="12" fill="#2f80ed"/><text x="${M.left + 218}" y="${legendY}" font-size="12" font-family="sans-serif">correcting the prediction (simulated)</text>`);
  parts.push(`<line x1="${M.left + 470}" y1="${legendY - 4}" x2="${M.left + 490}" y2="${legendY - 4}" stroke="#eb5757" stroke-width="3"/><text x="${M.left + 496}" y="${legendY}" font-size="12" font-family="sans-serif">F1</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${parts.join("")}</svg>`;
}

export async function chartPng(rounds: ReportRound[], title: string): Promise<Buffer> {
  return sharp(Buffer.from(chartSvg(rounds, title))).png().toBuffer();
}
