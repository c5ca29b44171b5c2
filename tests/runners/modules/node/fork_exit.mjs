// Fork mode: with input.code, the task's process exits at once with that status, without
// answering; without one it answers {"exited": false}.
export function executeFunction(input) {
  if (input?.code === undefined || input.code === null) return { exited: false };
  process.exit(Number(input.code));
}
