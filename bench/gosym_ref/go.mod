module gotlscap.bench/gosym_ref

go 1.19
