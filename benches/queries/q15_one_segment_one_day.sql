-- need: dashboard drill-down: one road segment's speed through one day
-- shape: point lookup (partition + row-group pruning)
SELECT observed_at, avg_speed_kmh, vehicle_count
FROM traffic.segment_speed WHERE dt = DATE '2025-06-18' AND segment_id = 7 ORDER BY observed_at;
