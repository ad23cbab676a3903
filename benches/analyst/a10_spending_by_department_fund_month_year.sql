-- need: finance bureau: payments by department, fund category and month over the year
-- shape: fact (expenditures, the year) ⋈ dimension (programs), grouped by two dimension attributes and month
SELECT p.department, p.fund_category, date_trunc('month', e.paid_at) AS month,
       count(*) AS payments, sum(e.amount) AS paid
FROM finance.expenditures e JOIN finance.programs p ON e.program_id = p.program_id
GROUP BY p.department, p.fund_category, date_trunc('month', e.paid_at)
ORDER BY p.department, p.fund_category, month;
