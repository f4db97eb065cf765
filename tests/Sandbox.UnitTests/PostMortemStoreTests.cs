using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.UnitTests;

/// <summary>The post-mortem records: one per sandbox id, bounded (oldest dropped), found by a container's id too,
/// and readable when written by hand.</summary>
public sealed class PostMortemStoreTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("pm-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static PostMortemRecord Record(string id, params string[] containers) =>
        new() { SandboxId = id, EndedAt = DateTimeOffset.UtcNow, Reason = "stopped", Containers = containers };

    [Fact]
    public void Records_beyond_the_bound_are_dropped_oldest_first()
    {
        var store = new PostMortemStore(_root, maxRecords: 2);
        foreach (string id in new[] { "a", "b", "c" })
        {
            Assert.Null(store.Write(Record(id)));
            File.SetLastWriteTimeUtc(store.PathOf(id), DateTime.UtcNow.AddMinutes(id[0] - 'z'));
        }
        Assert.Null(store.Write(Record("d")));
        Assert.Equal(["d", "c"], store.List().Select(r => r.SandboxId));
    }

    [Fact]
    public void A_record_is_found_by_its_sandbox_or_a_container_of_it_and_never_listed_as_a_sandbox()
    {
        var store = new PostMortemStore(_root);
        store.Write(Record("pod", "pause", "web"));
        Assert.Equal("pod", store.Find("web")?.SandboxId);
        Assert.Equal("pod", store.Find("pod")?.SandboxId);
        Assert.Null(store.Find("other"));
        Assert.Null(store.Find("../x"));
        Assert.Empty(SandboxStateDirectory.List(_root));
    }

    [Fact]
    public void A_bound_of_zero_writes_nothing_and_a_hand_written_record_reads_with_empty_lists()
    {
        new PostMortemStore(_root, maxRecords: 0).Write(Record("none"));
        Assert.False(Directory.Exists(Path.Combine(_root, PostMortemStore.DirectoryName)));

        var store = new PostMortemStore(_root);
        Directory.CreateDirectory(store.Directory);
        File.WriteAllText(store.PathOf("x"), """{"sandbox_id":"x","ended_at":"2026-12-05T12:00:00Z","reason":"r"}""");
        var record = store.Read("x");
        Assert.NotNull(record);
        Assert.Empty(record.Events);
        Assert.Empty(record.ConsoleTail);
        Assert.Null(store.Find("y"));
    }
}

/// <summary>events.jsonl stays bounded however long a pod lives.</summary>
public sealed class SandboxEventLogTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ev-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_long_life_keeps_the_last_events_and_the_file_stays_under_its_bound()
    {
        for (int i = 0; i < 8000; i++)
        {
            SandboxEventLog.Append(_directory, new SandboxEvent
            {
                Time = DateTimeOffset.UtcNow, Kind = SandboxEvent.ContainerExit, ContainerId = $"c{i}", ExitStatus = 1, Message = new string('x', 100),
            });
        }
        Assert.True(new FileInfo(Path.Combine(_directory, SandboxEventLog.FileName)).Length <= SandboxEventLog.MaxBytes);
        var events = SandboxEventLog.Read(_directory);
        Assert.Equal(SandboxEventLog.MaxEvents, events.Count);
        Assert.Equal("c7999", events[^1].ContainerId);
    }
}
