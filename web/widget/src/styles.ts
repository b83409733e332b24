// The widget's stylesheet. It lives in the shadow root: the page's CSS
// cannot reach in, and this cannot leak out. :host's !important rules win
// over the page's, even its !important ones, for the host element.

export const css = `
:host{all:initial!important;display:block!important;position:static!important;visibility:visible!important;opacity:1!important}
*{box-sizing:border-box}
.root{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#111827;-webkit-font-smoothing:antialiased}
button{font:inherit;cursor:pointer}
:focus-visible{outline:3px solid var(--ring);outline-offset:2px}
.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
.launcher{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;border:0;background:var(--accent);color:var(--on-accent);box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;z-index:2147483000;transition:transform .15s}
.launcher:hover{transform:scale(1.05)}
.left .launcher{right:auto;left:20px}
.launcher svg{width:28px;height:28px}
.panel{position:fixed;bottom:88px;right:20px;width:380px;max-width:calc(100vw - 40px);height:min(600px,calc(100vh - 108px));display:flex;flex-direction:column;background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.28);overflow:hidden;z-index:2147483000;transition:opacity .16s,transform .16s}
.left .panel{right:auto;left:20px}
.panel[hidden]{display:none}
header{display:flex;align-items:center;gap:8px;padding:12px 12px 12px 16px;background:var(--accent);color:var(--on-accent)}
header h2{flex:1;margin:0;font-size:16px;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
header button{background:transparent;border:0;color:inherit;width:36px;height:36px;border-radius:8px;display:flex;align-items:center;justify-content:center}
header button:hover{background:rgba(255,255,255,.18)}
header button svg{width:20px;height:20px}
.log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:10px;overscroll-behavior:contain}
.msg{max-width:85%;padding:9px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere}
.msg.assistant{align-self:flex-start;background:#f1f3f6;color:#111827;border-bottom-left-radius:4px}
.msg.user{align-self:flex-end;background:var(--accent);color:var(--on-accent);border-bottom-right-radius:4px}
.msg.pending .text:empty::after{content:"…"}
.msg .note{display:block;font-size:12px;color:#4b5563;margin-top:2px}
.msg.user .note{color:inherit;opacity:.85}
.voicebar{display:flex;align-items:center;gap:8px;padding:8px 12px;border-top:1px solid #e5e7eb;background:#f9fafb}
.voicebar[hidden]{display:none}
.dot{width:12px;height:12px;border-radius:50%;background:#6b7280;flex:none}
.voicebar[data-state=listening] .dot{background:#15803d}
.voicebar[data-state=hearing] .dot{background:#15803d;animation:pulse 1s infinite}
.voicebar[data-state=thinking] .dot{background:#b45309;animation:pulse 1.4s infinite}
.voicebar[data-state=speaking] .dot{background:var(--accent);animation:pulse .8s infinite}
@keyframes pulse{50%{transform:scale(1.5);opacity:.6}}
.vstate{flex:1;font-size:14px;color:#1f2937}
.pill{border:1px solid #9ca3af;background:#fff;color:#111827;border-radius:999px;padding:5px 12px;font-size:14px}
.pill:hover{background:#f3f4f6}
.status{padding:0 14px;font-size:13px;color:#374151;display:flex;gap:8px;align-items:center}
.status:not(:empty){padding:6px 14px}
.status.error{color:#b91c1c}
.status .pill{font-size:13px;padding:3px 10px}
form{display:flex;align-items:flex-end;gap:6px;padding:10px;border-top:1px solid #e5e7eb}
textarea{flex:1;resize:none;font:inherit;color:#111827;background:#fff;border:1px solid #9ca3af;border-radius:10px;padding:8px 10px;height:40px;max-height:120px;line-height:22px}
textarea::placeholder{color:#6b7280}
form button{width:40px;height:40px;border-radius:10px;border:0;display:flex;align-items:center;justify-content:center;flex:none}
form button svg{width:20px;height:20px}
.send{background:var(--accent);color:var(--on-accent)}
.mic{background:#eef0f3;color:#111827}
.mic[aria-pressed=true]{background:#b91c1c;color:#fff}
.mic[hidden]{display:none}
@media (max-width:480px){
.panel{inset:0;width:100%;max-width:none;height:100%;border-radius:0;bottom:0;right:0}
.open .launcher{display:none}
}
@media (prefers-reduced-motion:reduce){*{transition:none!important;animation:none!important}}
`;
