/** The UI's one stylesheet, served from /ui/static/cordon.css (the CSP allows styles from 'self' only). */
export const STYLESHEET = `
:root { --fg: #1d232b; --muted: #5b6673; --line: #d8dee6; --bg: #f6f8fa; --card: #fff; --accent: #1f5fbf;
  --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #b42318; --bad-bg: #fee4e2; --wait: #9a6700; --wait-bg: #fff8c5; --neutral-bg: #eef1f4; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
pre { background: var(--neutral-bg); padding: 8px; border-radius: 6px; overflow-x: auto; margin: 4px 0; }
header.top { display: flex; gap: 24px; align-items: center; padding: 10px 24px; background: #14213d; color: #fff; }
header.top a { color: #fff; text-decoration: none; }
header.top .brand { font-weight: 700; letter-spacing: .04em; }
header.top nav { display: flex; gap: 16px; flex: 1; }
header.top .who { display: flex; gap: 10px; align-items: center; font-size: 14px; }
header.top .who form { margin: 0; }
header.top button { background: transparent; color: #fff; border: 1px solid #8da2c0; border-radius: 4px; padding: 2px 10px; cursor: pointer; }
.dev-banner { background: var(--wait-bg); color: var(--wait); padding: 4px 24px; font-size: 13px; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 4px 0 12px; }
h2 { font-size: 17px; margin: 0 0 10px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 14px 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
section dl.facts + h2 { margin-top: 16px; }
time { white-space: nowrap; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; background: var(--neutral-bg); }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.wait { background: var(--wait-bg); color: var(--wait); }
.flash { border-radius: 8px; padding: 10px 14px; margin: 10px 0; font-weight: 500; }
.flash.ok { background: var(--ok-bg); color: var(--ok); }
.flash.error { background: var(--bad-bg); color: var(--bad); }
.change del { background: var(--bad-bg); color: var(--bad); text-decoration: line-through; padding: 0 4px; border-radius: 3px; }
.change ins { background: var(--ok-bg); color: var(--ok); text-decoration: none; padding: 0 4px; border-radius: 3px; }
.change .arrow { color: var(--muted); padding: 0 4px; }
form.filters { display: flex; gap: 12px; align-items: end; flex-wrap: wrap; }
form.filters label, form.decide label { display: flex; flex-direction: column; gap: 2px; font-size: 13px; color: var(--muted); }
input, select, textarea { font: inherit; padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px; background: #fff; color: var(--fg); }
textarea { width: 100%; min-height: 70px; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
button.approve { background: var(--ok); color: #fff; border-color: var(--ok); }
button.reject { background: var(--bad); color: #fff; border-color: var(--bad); }
a.button { display: inline-block; padding: 8px 16px; border-radius: 6px; text-decoration: none; border: 1px solid var(--line); }
a.button.primary, button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
form.decide .buttons { display: flex; gap: 10px; margin-top: 10px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr)); gap: 14px; }
.cards section { margin: 0; }
ul.plain { list-style: none; padding: 0; margin: 0; }
ul.plain li { padding: 2px 0; }
.signin { max-width: 460px; margin: 60px auto; }
.signin .option { margin: 14px 0; }
.signin .who-list { display: flex; flex-wrap: wrap; gap: 8px; }
`;
