/** A time series chart (uPlot): one line per series, counts per bucket. */
import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

const COLORS = ['#1f6feb', '#d1242f', '#2da44e', '#bf8700', '#8250df', '#0a7ea4', '#cf222e', '#57606a']

export function Chart(props: { times: number[]; series: { name: string; counts: number[] }[]; width?: number; height?: number }) {
  const el = useRef<HTMLDivElement>(null)
  useEffect(() => {
    if (el.current === null) return
    const data: uPlot.AlignedData = [props.times.map((t) => t / 1000), ...props.series.map((s) => s.counts)]
    const plot = new uPlot({
      width: props.width ?? Math.min(1000, (el.current.parentElement?.clientWidth ?? 900) - 20),
      height: props.height ?? 280,
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { label: '' }],
      series: [{}, ...props.series.map((s, i) => ({ label: s.name, stroke: COLORS[i % COLORS.length], width: 2, points: { show: true, size: 4 } }))],
    }, data, el.current)
    return () => plot.destroy()
  }, [props.times, props.series])
  return <div ref={el} class="chart" data-testid="chart" />
}
