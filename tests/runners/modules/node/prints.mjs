export function executeFunction() {
  console.log("printed-to-stdout");
  process.stdout.write("written-to-process-stdout\n");
  return { printed: true };
}
