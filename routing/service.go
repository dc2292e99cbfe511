package routing

// Order appends the service's pools to dst in the order they should be
// tried for a client in region:
//
//   - failover: as listed;
//   - geo: the pools of the client's region first, then the rest as listed;
//   - weighted: one pool chosen by weight (exact over time), then the rest as
//     listed, so a weighted service still fails over.
//
// Callers skip pools with no available endpoint. Order does not allocate when
// dst has room.
func (s *Service) Order(dst []*Pool, region string) []*Pool {
	switch s.Policy {
	case "geo":
		for _, p := range s.Pools {
			if p.Region == region {
				dst = append(dst, p)
			}
		}
		for _, p := range s.Pools {
			if p.Region != region {
				dst = append(dst, p)
			}
		}
	case "weighted":
		first := s.wrr.pick()
		if first >= 0 {
			dst = append(dst, s.Pools[first])
		}
		for i, p := range s.Pools {
			if i != first {
				dst = append(dst, p)
			}
		}
	default:
		dst = append(dst, s.Pools...)
	}
	return dst
}
