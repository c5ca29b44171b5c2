package function

import "encoding/json"

type statsInput struct {
	Values []float64 `json:"values"`
}

type statsOutput struct {
	Count int      `json:"count"`
	Sum   float64  `json:"sum"`
	Mean  *float64 `json:"mean"`
}

func Execute(input json.RawMessage) (any, error) {
	var in statsInput
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	out := statsOutput{Count: len(in.Values)}
	for _, v := range in.Values {
		out.Sum += v
	}
	if out.Count > 0 {
		mean := out.Sum / float64(out.Count)
		out.Mean = &mean
	}
	return out, nil
}
