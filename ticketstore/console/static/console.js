// alertdesk console: local times, deadline countdowns, and the queue refreshing itself. No library, no inline script.
"use strict";

function pad(n) { return String(n).padStart(2, "0"); }

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (isNaN(at)) continue;
    el.title = el.getAttribute("datetime").replace("T", " ").replace("Z", " UTC");
    if (el.hasAttribute("data-countdown")) continue;
    el.textContent = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ` +
      `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
  }
}

function span(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor(s / 60) % 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor(s / 3600) % 24} h`;
}

function countdowns() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time[data-countdown]")) {
    const left = new Date(el.getAttribute("datetime")).getTime() - now;
    el.textContent = left >= 0 ? `${span(left)} left` : `due ${span(left)} ago`;
    el.classList.toggle("breached", left < 0);
  }
}

async function pollQueue() {
  const queue = document.getElementById("queue");
  if (!queue) return;
  try {
    const answer = await fetch("/tickets/changes", { credentials: "same-origin", cache: "no-store" });
    if (!answer.ok) return;
    const { cursor } = await answer.json();
    if (cursor === queue.dataset.changes) return;
    const page = await fetch(location.href, { credentials: "same-origin", headers: { "X-Console-Fragment": "queue" } });
    if (!page.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = await page.text();  // our own server-rendered, escaped HTML
    const fresh = holder.querySelector("#queue");
    if (!fresh) return;
    queue.replaceWith(fresh);
    localTimes(fresh);
    countdowns();
  } catch (e) {
    // the server restarting or the network gone: try again at the next tick
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  countdowns();
  setInterval(countdowns, 1000);
  if (document.getElementById("queue")) setInterval(pollQueue, 2000);
});
