export function somethingElse(input) {
  return input;
}
