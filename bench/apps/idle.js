// Idle fork-mode app: keeps the event loop alive and does nothing else.
setInterval(() => {}, 1000);
