"""The Mail console page: one self-contained HTML file, charts drawn as inline SVG by plain JS.

It polls ``mail.json`` every two seconds and redraws: the alert (a run whose
every transaction fails says so first), per phase p50/p95/p99/max in µs in
protocol order, replies by code and phase, rates, end-to-end delivery, the
sink's counters, each worker's share, one chart per phase over time
with the ``--check`` thresholds that apply to it drawn as dashed lines, and
rates and replies by code per second over time (of the seconds every
worker has reported: a master's last seconds are still coming in).
No CDN, no network: it works on a machine without internet. Every text
from the JSON goes in through ``textContent``, so a server's reply is shown
as text, never as markup.
"""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loadkit · Mail</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#1b3a4b;color:#fff}
header a{color:#cfe8ff}
main{padding:1em 1.2em;max-width:1400px}
h2{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;white-space:nowrap}
th{background:#eef2f5}
td:first-child,th:first-child{text-align:left}
td.text{text-align:left;white-space:normal;max-width:40em}
#alert{display:none;background:#b00020;color:#fff;padding:.6em 1em;font-weight:600;margin-bottom:1em}
.grid{display:flex;flex-wrap:wrap;gap:1em}
.chart{background:#fff;border:1px solid #ddd;padding:.4em}
.chart h3{font-size:.95em;margin:.1em .2em .3em}
svg text{font-size:11px;fill:#444}
.row{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
#state{font-weight:600}
</style></head>
<body>
<header><strong>loadkit · Mail</strong><span id="state">…</span>
<a id="report" href="report" target="_blank">Report of the run</a>
<a id="zip" href="results.zip">Results folder (zip)</a>
<a href="../">Locust UI</a></header>
<main>
<div id="alert" role="alert"></div>
<div class="row">
<div><h2>Messages and phases (µs)</h2><table id="phases"></table></div>
<div><h2>Replies by code and phase</h2><table id="replies"></table></div>
<div><h2>Rates</h2><table id="rates"></table></div>
</div>
<div class="row">
<div id="e2e-box"><h2>End to end</h2><table id="e2e"></table></div>
<div id="sink-box"><h2>Sink</h2><table id="sink"></table></div>
<div id="workers-box"><h2>Workers</h2><table id="workers"></table></div>
</div>
<h2>Phases over time (ms)</h2>
<div class="grid" id="charts"></div>
</main>
<script>
"use strict";
const COLORS={p50:"#4c78a8",p95:"#f58518",p99:"#e45756"};
function el(tag,text,cls){const e=document.createElement(tag);if(text!==undefined&&text!==null)e.textContent=String(text);if(cls)e.className=cls;return e}
function fmt(v,d){if(v===null||v===undefined)return "";if(typeof v!=="number")return v;return d===undefined?v.toLocaleString("en-US"):v.toLocaleString("en-US",{maximumFractionDigits:d,minimumFractionDigits:d})}
function table(id,head,rows){const t=document.getElementById(id);t.replaceChildren();const tr=el("tr");head.forEach(h=>tr.appendChild(el("th",h)));t.appendChild(tr);
 rows.forEach(r=>{const row=el("tr");r.forEach((c,i)=>{const cell=el("td",c);if(i===r.length-1&&typeof c==="string"&&i>0)cell.className="text";row.appendChild(cell)});t.appendChild(row)});}
function svg(tag,attrs){const e=document.createElementNS("http://www.w3.org/2000/svg",tag);for(const k in attrs)e.setAttribute(k,attrs[k]);return e}
function chart(title,points,series,lines){
 const W=430,H=190,L=48,R=10,T=10,B=24;const box=el("div",undefined,"chart");box.appendChild(el("h3",title));
 const s=svg("svg",{width:W,height:H,role:"img"});box.appendChild(s);
 const xs=points.map(p=>p.t);const x0=Math.min(...xs),x1=Math.max(...xs,x0+1);
 let ymax=0;series.forEach(k=>points.forEach(p=>{if(p[k]!=null)ymax=Math.max(ymax,p[k])}));lines.forEach(l=>ymax=Math.max(ymax,l.limit_ms*1.1));ymax=ymax||1;
 const X=t=>L+(t-x0)/(x1-x0)*(W-L-R),Y=v=>H-B-v/ymax*(H-T-B);
 s.appendChild(svg("line",{x1:L,y1:H-B,x2:W-R,y2:H-B,stroke:"#999"}));s.appendChild(svg("line",{x1:L,y1:T,x2:L,y2:H-B,stroke:"#999"}));
 [0,.5,1].forEach(f=>{const t=svg("text",{x:L-4,y:Y(ymax*f)+4,"text-anchor":"end"});t.textContent=fmt(ymax*f,ymax*f<10?2:0);s.appendChild(t)});
 const tl=svg("text",{x:W-R,y:H-6,"text-anchor":"end"});tl.textContent=fmt(x1-x0,0)+" s";s.appendChild(tl);
 let lx=L+8;
 series.forEach((k,i)=>{const color=COLORS[k]||["#54a24b","#b279a2","#9d755d","#4c78a8","#e45756","#f58518"][i%6];
  const pts=points.filter(p=>p[k]!=null).map(p=>X(p.t).toFixed(1)+","+Y(p[k]).toFixed(1)).join(" ");
  if(pts)s.appendChild(svg("polyline",{points:pts,fill:"none",stroke:color,"stroke-width":1.5,"data-series":k}));
  const lg=svg("text",{x:lx,y:T+10,fill:color});lg.textContent=k;s.appendChild(lg);lx+=k.length*6.5+14});
 lines.forEach(l=>{const y=Y(l.limit_ms);s.appendChild(svg("line",{x1:L,y1:y,x2:W-R,y2:y,stroke:"#b00020","stroke-dasharray":"5,4","data-threshold":l.expression}));
  const t=svg("text",{x:W-R-4,y:y-3,"text-anchor":"end",fill:"#b00020"});t.textContent=l.expression;s.appendChild(t)});
 return box}
function draw(d){
 document.getElementById("state").textContent=(d.state||"")+" · "+fmt(d.elapsed,0)+" s";
 const a=document.getElementById("alert");a.textContent=d.alert||"";a.style.display=d.alert?"block":"none";
 const rows=d.requests.map(r=>["message "+r.label,r.count,fmt(r.rate,1),r.p50,r.p95,r.p99,r.max,r.failed+" failed"])
  .concat(d.phases.map(p=>[p.phase,p.count,fmt(p.rate,1),p.p50,p.p95,p.p99,p.max,p.failed+" failed"]));
 table("phases",["Name / phase","Count","Per second","p50","p95","p99","max",""],rows.map(r=>r.map((c,i)=>i>0&&i<7&&typeof c==="number"?fmt(c):c)));
 table("replies",["Reply","Phase","Count","Per second","Example"],d.replies.map(r=>[r.code,r.phase,fmt(r.count),fmt(r.rate,1),r.example]));
 table("rates",["","Total","Now /s","Run /s"],Object.entries(d.rates).map(([k,v])=>[k,fmt(v.total),fmt(v.current,1),fmt(v.rate,1)]));
 const e=d.e2e;document.getElementById("e2e-box").style.display=e?"":"none";
 if(e)table("e2e",["","Value"],["accepted","delivered","lost","duplicated"].filter(k=>e[k]!=null).map(k=>[k,fmt(e[k])]).concat(e.p99_us!=null?[["delivery p99 µs",fmt(e.p99_us)]]:[]).concat(e.note?[["",e.note]]:[]));
 const k=d.sink;document.getElementById("sink-box").style.display=k?"":"none";
 if(k){const st=k.stats||{};const r=["sessions","messages","recipients","bytes"].filter(n=>st[n]!=null).map(n=>[n,fmt(st[n])]);
  Object.entries(st.replies||{}).forEach(([c,n])=>r.push(["reply "+c,fmt(n)]));if(k.error)r.push(["error",k.error]);table("sink",["","Value"],r)}
 document.getElementById("workers-box").style.display=d.workers.length?"":"none";
 table("workers",["Worker","Requests","Share","Per second","p99 µs"],d.workers.map(w=>[w.worker,fmt(w.requests),fmt(w.share*100,1)+"%",fmt(w.rate,1),w.p99_us==null?"":fmt(Math.round(w.p99_us))]));
 const c=document.getElementById("charts");c.replaceChildren();const t0=d.timeline.length?d.timeline[0].time:0;
 const names=[];d.phases.forEach(p=>{if(!names.includes(p.phase))names.push(p.phase)});
 const req=d.requests.map(r=>r.label);
 req.forEach(label=>{const pts=d.timeline.map(p=>{const v=p.requests[label]||[];return {t:p.time-t0,p50:v[0],p95:v[1],p99:v[2]}});
  c.appendChild(chart("message "+label,pts,["p50","p95","p99"],d.thresholds.filter(l=>!l.phase&&(!l.scope||label.endsWith(" "+l.scope)||label===l.scope))))});
 names.forEach(name=>{const pts=d.timeline.map(p=>{const v=p.phases[name]||[];return {t:p.time-t0,p50:v[0],p95:v[1],p99:v[2]}});
  c.appendChild(chart(name,pts,["p50","p95","p99"],d.thresholds.filter(l=>l.phase===name)))});
 const settled=d.timeline.filter(p=>!p.open);
 const rp=settled.map(p=>({t:p.time-t0,messages:p.messages/p.seconds,sessions:p.sessions/p.seconds,failed:p.failed/p.seconds}));
 if(rp.length)c.appendChild(chart("messages, sessions and failures per second",rp,["messages","sessions","failed"],[]));
 const codes=[];d.timeline.forEach(p=>Object.keys(p.replies).forEach(k=>{if(!codes.includes(k))codes.push(k)}));
 if(codes.length){const shown=codes.slice(0,5);const pts=settled.map(p=>{const o={t:p.time-t0,"2xx":(p.messages-p.failed)/p.seconds};shown.forEach(k=>o[k]=(p.replies[k]||0)/p.seconds);return o});
  c.appendChild(chart("replies per second by code and phase",pts,["2xx"].concat(shown),[]))}
 document.body.dataset.updated=String(Date.now());}
async function poll(){try{const r=await fetch("mail.json",{cache:"no-store"});if(r.ok)draw(await r.json())}catch(e){}setTimeout(poll,2000)}
poll();
</script></body></html>
"""
