// Fork mode: sleeps input.seconds, then answers {"slept": seconds}.
export async function executeFunction(input) {
  const seconds = Number(input?.seconds ?? 0);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return { slept: seconds };
}
