//! The page: one HTML document with inline CSS and JavaScript. The status JSON is embedded in a
//! `<script type="application/json">` with every character that could end the element or start
//! markup escaped; the script renders it (and every later fetch) with DOM calls and
//! `textContent` only, never as markup.

use serde_json::Value;

use super::Config;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside `<script type="application/json">`: `<`, `>`, `&` and the line
/// separators become `\uXXXX` escapes (they only occur inside JSON strings, where the escapes
/// mean the same characters).
pub(crate) fn script_json(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page with `status` embedded.
pub(crate) fn render(cfg: &Config, status: &Value) -> String {
    let title = escape_html(&cfg.title);
    let banner = if cfg.banner.is_empty() {
        String::new()
    } else {
        format!(r#"<div class="banner" id="banner">{}</div>"#, escape_html(&cfg.banner))
    };
    let mut out = String::with_capacity(STYLE.len() + SCRIPT.len() + 4096);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str(&format!("<title>{title}</title><style>{STYLE}</style></head><body>"));
    out.push_str(&format!(
        "<header><h1>{title}</h1><span id=\"updated\" class=\"muted\"></span></header>{banner}"
    ));
    out.push_str(
        "<noscript><p>This page needs JavaScript to draw; the same data is at <a href=\"api/v1/status\">api/v1/status</a>.</p></noscript>",
    );
    out.push_str("<main id=\"content\"></main>");
    out.push_str("<script type=\"application/json\" id=\"status-data\">");
    out.push_str(&script_json(status));
    out.push_str("</script><script>");
    out.push_str(SCRIPT);
    out.push_str("</script></body></html>\n");
    out
}

const STYLE: &str = r#"
:root{--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--muted:#6b7280;--line:#e3e6eb;--ok:#1a7f37;--warn:#b35900;--bad:#c62828;--info:#1f5fbf}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;align-items:baseline;gap:1em;padding:12px 20px;background:#1d2330;color:#fff}header h1{font-size:18px;margin:0}
header .muted{color:#c9ced6}.banner{background:#fff4ce;border-bottom:2px solid #e0b000;padding:8px 20px;font-weight:600}
main{padding:12px 20px;display:grid;gap:16px}h2{font-size:15px;margin:0 0 8px}h3{font-size:14px;margin:0}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:12px}
.card{border:1px solid var(--line);border-radius:6px;padding:10px}.row{display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--muted)}
.v-healthy,.s-success,.st-resolved,.up{background:var(--ok)}.v-provider_outage,.st-firing,.s-fail,.down{background:var(--bad)}
.v-tenant_issue,.v-application_issue,.v-degraded,.st-pending{background:var(--warn)}.v-transient,.v-no_outage{background:var(--info)}
table{border-collapse:collapse;width:100%;margin-top:6px}th,td{text-align:left;padding:3px 6px;border-bottom:1px solid var(--line);font-variant-numeric:tabular-nums}
th{font-weight:600;color:var(--muted);font-size:12px}.muted{color:var(--muted)}.reason{margin:4px 0;color:var(--muted)}
.chip{display:inline-block;margin:2px 4px 2px 0;padding:0 6px;border:1px solid var(--line);border-radius:4px;font-size:12px}
svg.chart{width:100%;height:90px;background:#fbfcfd;border:1px solid var(--line);border-radius:4px;margin-top:6px}
.legend span{margin-right:10px;font-size:12px}.empty{color:var(--muted);font-style:italic}
.stale header{background:#6b7280}
"#;

const SCRIPT: &str = r#"
(function(){'use strict';
var dataEl=document.getElementById('status-data');var root=document.getElementById('content');
var COLORS=['#c62828','#1f5fbf','#1a7f37','#b35900','#6a1b9a'];
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;if(text!==undefined&&text!==null)e.textContent=String(text);return e;}
function add(p){for(var i=1;i<arguments.length;i++){var c=arguments[i];if(c===null||c===undefined)continue;p.appendChild(typeof c==='object'?c:document.createTextNode(String(c)));}return p;}
function safeClass(s){return String(s).replace(/[^a-z0-9_]/gi,'');}
function badge(text,cls){var b=el('span','badge '+cls,text);return b;}
function pct(r){return (r===null||r===undefined)?'\u2013':(r*100).toFixed(1)+'%';}
function pad(n){return n<10?'0'+n:''+n;}
function clock(t){if(!t)return '\u2013';var d=new Date(t*1000);return pad(d.getHours())+':'+pad(d.getMinutes())+':'+pad(d.getSeconds());}
function ms(x){return (x===null||x===undefined)?'\u2013':(x<10?x.toFixed(1):Math.round(x))+' ms';}
function table(head,rows){var t=el('table');var tr=el('tr');head.forEach(function(h){add(tr,el('th',null,h));});add(t,tr);rows.forEach(function(r){add(t,r);});return t;}
function tr(cells){var r=el('tr');cells.forEach(function(c){add(r,(c&&c.nodeType)?c:el('td',null,c));});return r;}
function td(text,attrs){var c=el('td',null,text);if(attrs)for(var k in attrs)c.setAttribute(k,String(attrs[k]));return c;}
function maxOf(history){var m=0;history.forEach(function(h){h.points.forEach(function(p){if(p[1]!==null)m=Math.max(m,p[1]);});});return m;}
function chart(history){
  var NS='http://www.w3.org/2000/svg';var W=360,H=80;var s=document.createElementNS(NS,'svg');
  s.setAttribute('class','chart');s.setAttribute('viewBox','0 0 '+W+' '+H);s.setAttribute('preserveAspectRatio','none');
  var t0=Infinity,t1=-Infinity,max=0.05;
  history.forEach(function(h){h.points.forEach(function(p){t0=Math.min(t0,p[0]);t1=Math.max(t1,p[0]);if(p[1]!==null)max=Math.max(max,p[1]);});});
  if(!isFinite(t0)||t1<=t0){t1=t0+1;}
  max=Math.min(1,max*1.15);
  var grid=document.createElementNS(NS,'line');grid.setAttribute('x1','0');grid.setAttribute('x2',String(W));grid.setAttribute('y1',String(H-1));grid.setAttribute('y2',String(H-1));grid.setAttribute('stroke','#e3e6eb');s.appendChild(grid);
  history.forEach(function(h,i){var pts=[];h.points.forEach(function(p){if(p[1]===null)return;var x=(p[0]-t0)/(t1-t0)*(W-4)+2;var y=H-2-(p[1]/max)*(H-6);pts.push(x.toFixed(1)+','+y.toFixed(1));});
    if(pts.length===0)return;var pl=document.createElementNS(NS,'polyline');pl.setAttribute('points',pts.join(' '));pl.setAttribute('fill','none');pl.setAttribute('stroke',COLORS[i%COLORS.length]);pl.setAttribute('stroke-width','2');pl.setAttribute('vector-effect','non-scaling-stroke');s.appendChild(pl);});
  s.setAttribute('data-max',String(max));
  return s;
}
function alertItem(a){
  var li=el('div','card');li.setAttribute('data-alert',a.name||'');li.setAttribute('data-state',a.state||'');li.setAttribute('data-verdict',a.verdict||'');
  add(li,add(el('div','row'),el('h3',null,a.name),badge(a.state,'st-'+safeClass(a.state)),badge(a.verdict,'v-'+safeClass(a.verdict)),a.dependency?el('span','muted','dependency '+a.dependency):null,
    el('span','muted',a.resolved_at?('resolved '+clock(a.resolved_at)):('since '+clock(a.starts_at)))));
  add(li,el('div',null,a.summary),el('div','reason',a.verdict_reason));
  return li;
}
function renderAlerts(s){
  var sec=add(el('section'),el('h2',null,'Alerts'));sec.id='alerts';
  var f=el('div');f.id='alerts-firing';(s.alerts.firing||[]).forEach(function(a){add(f,alertItem(a));});
  if(!(s.alerts.firing||[]).length)add(f,el('p','empty','No alert is firing.'));add(sec,f);
  if((s.alerts.pending||[]).length){var p=el('div');p.id='alerts-pending';add(sec,el('h3',null,'Pending'));s.alerts.pending.forEach(function(a){add(p,alertItem(a));});add(sec,p);}
  var r=el('div');r.id='alerts-resolved';add(sec,el('h3',null,'Recently resolved'));(s.alerts.resolved||[]).forEach(function(a){add(r,alertItem(a));});
  if(!(s.alerts.resolved||[]).length)add(r,el('p','empty','None.'));add(sec,r);return sec;
}
function renderDependency(d){
  var c=el('div','card dependency');c.setAttribute('data-dependency',d.name);
  var v=badge(d.verdict,'verdict v-'+safeClass(d.verdict));v.setAttribute('data-verdict',d.verdict);
  add(c,add(el('div','row'),el('h3',null,d.name),v,el('span','muted',(d.requests||0)+' calls, '+(d.errors||0)+' errors since start')));
  if(d.verdict_reason)add(c,el('div','reason',d.verdict_reason));
  if((d.firing||[]).length)add(c,el('div',null,'Firing: '+d.firing.join(', ')));
  if(d.logins){var L=d.logins;var lg=el('div','logins');lg.setAttribute('data-logins',String(L.logins));lg.setAttribute('data-failures',String(L.failures));lg.setAttribute('data-users-affected',L.users_affected===null?'':String(L.users_affected));
    add(lg,'Logins (tenant log, '+L.window+'): '+L.logins+', '+L.failures+' failed ('+L.provider_side_failures+' on the provider\u2019s side: '+L.provider_errors+' provider, '+L.tenant_errors+' tenant errors), users affected '+(L.users_affected===null?'?':L.users_affected)+(L.users_affected_provider_side?(' ('+L.users_affected_provider_side+' by provider-side failures)'):''));add(c,lg);}
  var rows=(d.windows||[]).map(function(w){return tr([w.window,td(w.requests),td(w.errors),td(pct(w.error_ratio),{'class':'ratio','data-window':w.window,'data-ratio':w.error_ratio===null?'':w.error_ratio})]);});
  add(c,table(['window','calls','errors','error ratio'],rows));
  var hist=d.history||[];add(c,chart(hist));var lg=el('div','legend');add(lg,el('span','muted','error ratio, chart top '+pct(Math.min(1,Math.max(0.05,maxOf(hist))*1.15))));hist.forEach(function(h,i){var sp=el('span',null,'\u25A0 '+h.window);sp.style.color=COLORS[i%COLORS.length];add(lg,sp);});add(c,lg);
  var cls=el('div');for(var k in (d.by_class||{})){if(k!=='ok'&&d.by_class[k]>0)add(cls,el('span','chip',k+' '+d.by_class[k]));}
  if(cls.childNodes.length)add(c,add(el('div',null,'Errors by class: '),cls));
  if((d.error_groups||[]).length){add(c,el('h3',null,'Top error groups'));
    add(c,table(['endpoint','class','key','calls','last seen'],d.error_groups.map(function(g){return tr([g.endpoint,g.class,g.key,td(g.count),clock(g.last_seen)]);})));}
  return c;
}
function renderProbe(p){
  var c=el('div','card probe');c.setAttribute('data-check',p.check||'');var runs=p.runs||[];var last=runs[0];
  var head=add(el('div','row'),el('h3',null,p.check),el('span','muted',(p.type||'')+' \u2192 '+(p.server_address||'')));
  if(last){add(head,last.degraded?badge('degraded','v-degraded'):badge(last.outcome,last.success?'s-success':'s-fail'));}
  add(c,head);
  if(last&&last.ratelimit){var rl=last.ratelimit;add(c,el('div',null,'Rate-limit headroom: '+(rl.remaining===null?'?':rl.remaining)+' of '+(rl.limit===null?'?':rl.limit)+' left'+(rl.reset?(', resets '+clock(rl.reset)):'')));}
  if(last&&last.cert_not_after){add(c,el('div',null,'Certificate expires in '+Math.floor((last.cert_not_after-Date.now()/1000)/86400)+' days'));}
  add(c,table(['started','outcome','status','duration','phases'],runs.map(function(r){
    var ph=[];for(var k in (r.phases||{}))ph.push(k+' '+ms(r.phases[k]));
    return tr([clock(r.started_at),td(r.outcome,{'data-outcome':r.outcome}),(r.status===null?'\u2013':r.status)+(r.oauth_error?' '+r.oauth_error:''),ms(r.duration_ms),ph.join(' \u00b7 ')]);})));
  return c;
}
function renderProvider(p){
  var c=el('div','card provider');c.setAttribute('data-page',p.page||'');
  var names=['none','minor','major','critical'];var ind=(p.indicator===null||p.indicator===undefined)?'unknown':(names[p.indicator]||String(p.indicator));
  add(c,add(el('div','row'),el('h3',null,p.page),badge(p.up?'up':'down',p.up?'up':'down'),el('span','muted','indicator '+ind+', checked '+clock(p.checked_at))));
  if(p.error)add(c,el('div','reason','cannot be read: '+p.error));
  var comps=el('div');(p.components||[]).forEach(function(x){add(comps,el('span','chip',x.name+': '+x.status));});add(c,comps);
  (p.incidents||[]).forEach(function(i){add(c,add(el('div','reason'),el('strong',null,i.name),' ('+i.impact+', '+i.status+') ',i.update||''));});
  return c;
}
function section(id,title,items,fn,empty){var s=add(el('section'),el('h2',null,title));s.id=id;var g=el('div','cards');
  items.forEach(function(x){add(g,fn(x));});if(!items.length)add(g,el('p','empty',empty));add(s,g);return s;}
function render(s){
  var frag=document.createDocumentFragment();
  add(frag,renderAlerts(s));
  add(frag,section('dependencies','Dependencies',s.dependencies||[],renderDependency,'No calls to a watched dependency yet.'));
  add(frag,section('probes','Synthetic probes',s.probes||[],renderProbe,'No probe has run yet.'));
  add(frag,section('provider','Provider status',s.provider_status||[],renderProvider,'No status page is watched.'));
  while(root.firstChild)root.removeChild(root.firstChild);root.appendChild(frag);
  root.setAttribute('data-generated-at',String(s.generated_at));
  document.getElementById('updated').textContent='updated '+clock(s.generated_at);
  document.body.classList.remove('stale');
}
function load(){
  fetch('api/v1/status',{cache:'no-store'}).then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.text();}).then(function(t){
    var s=JSON.parse(t);dataEl.textContent=t.replace(/</g,'\\u003c');render(s);}).catch(function(){document.body.classList.add('stale');
    document.getElementById('updated').textContent='cannot reach authwatch; showing the last data';});
}
var initial=JSON.parse(dataEl.textContent);render(initial);
setInterval(load,Math.max(500,initial.refresh_interval_ms||5000));
})();
"#;
