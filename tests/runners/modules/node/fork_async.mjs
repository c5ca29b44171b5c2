// Fork mode: an async function answers after awaiting a timer, leaving an interval running and
// a promise pending; the task's process still ends right after its answer (no TIMEOUT), and the
// next call starts fresh: every call answers {"awaited": true, "calls": 1}.
let calls = 0;

export async function executeFunction() {
  calls += 1;
  await new Promise((resolve) => setTimeout(resolve, 20));
  setInterval(() => {}, 1000);
  new Promise(() => {});
  return { awaited: true, calls };
}
