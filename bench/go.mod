module github.com/shardline/shardline/bench

go 1.26.8

replace github.com/shardline/shardline => ../
