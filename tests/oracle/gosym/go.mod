module gotlscap.test/oracle/gosym

go 1.19
