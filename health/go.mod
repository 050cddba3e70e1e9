module github.com/healthbridge/healthbridge/health

go 1.26.8
