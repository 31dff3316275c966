-- Ad delivery and revenue for the day @run_date. Revenue stays in micro-units of its
-- currency; eCPM is the revenue per thousand impressions in currency units.
SELECT
  @run_date AS date,
  advertiser_id,
  campaign_id,
  placement,
  currency,
  COUNT(*) AS impressions,
  COUNT(DISTINCT user_pseudonym) AS reach,
  COUNTIF(clicked) AS clicks,
  SAFE_DIVIDE(COUNTIF(clicked), COUNT(*)) AS click_through_rate,
  SUM(revenue_micros) AS revenue_micros,
  SAFE_DIVIDE(SUM(revenue_micros), COUNT(*)) / 1000 AS ecpm
FROM events.ad_impression_v1_dedup
WHERE DATE(event_time) = @run_date
GROUP BY advertiser_id, campaign_id, placement, currency
