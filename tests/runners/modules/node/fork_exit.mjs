// Fork mode: the task's process exits at once with status input.code, without answering.
export function executeFunction(input) {
  process.exit(Number(input?.code ?? 1));
}
