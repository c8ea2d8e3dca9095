module gotlscap.test/tlsprogs

go 1.15
