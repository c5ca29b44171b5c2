def execute(input):
    values = input["values"]
    total = sum(values)
    return {"count": len(values), "sum": total, "mean": total / len(values) if values else None}
