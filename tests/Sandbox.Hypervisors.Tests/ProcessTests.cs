using Sandbox.Hypervisors.Processes;

namespace Sandbox.Hypervisors.Tests;

public class ProcessTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Exit_code_and_output_are_kept_and_every_waiter_sees_the_exit()
    {
        using var process = SupervisedProcess.Start("sh", "/bin/sh", ["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]);
        var first = process.Exited.WaitAsync(Guard);
        var second = process.Exited.WaitAsync(Guard);
        Assert.Equal(3, await first);
        Assert.Equal(3, await second);
        Assert.Contains("to-stderr", process.OutputTail);
        Assert.Contains("to-stdout", process.OutputTail);
        Assert.NotNull(process.ExitedAt);
    }

    [Fact]
    public async Task A_supervised_process_cannot_gain_privileges()
    {
        using var process = SupervisedProcess.Start("sleep", "/bin/sleep", ["300"]);
        Assert.Contains("NoNewPrivs:\t1", File.ReadAllLines($"/proc/{process.Pid}/status"));
        await process.TerminateAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
    }

    [Fact]
    public async Task Terminate_sends_sigterm_first()
    {
        using var process = SupervisedProcess.Start("sleep", "/bin/sleep", ["300"]);
        await process.TerminateAsync(Guard, CancellationToken.None);
        Assert.Equal(128 + PosixSignal.SigTerm, await process.Exited);
    }

    [Fact]
    public async Task Terminate_kills_what_ignores_sigterm()
    {
        // The shell ignores TERM and announces when the trap is in place, so the signal cannot arrive before it.
        using var process = SupervisedProcess.Start("sh", "/bin/sh", ["-c", "trap '' TERM; echo trapped; while :; do sleep 1; done"]);
        while (!process.OutputTail.Contains("trapped"))
            await Task.Delay(10);
        await process.TerminateAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None);
        Assert.Equal(128 + PosixSignal.SigKill, await process.Exited);
    }

    [Fact]
    public async Task Cancelling_terminate_kills_at_once()
    {
        using var process = SupervisedProcess.Start("sh", "/bin/sh", ["-c", "trap '' TERM; echo trapped; while :; do sleep 1; done"]);
        while (!process.OutputTail.Contains("trapped"))
            await Task.Delay(10);
        await process.TerminateAsync(TimeSpan.FromHours(1), new CancellationToken(canceled: true));
        Assert.Equal(128 + PosixSignal.SigKill, await process.Exited);
    }

    [Fact]
    public void Output_tail_keeps_the_last_lines()
    {
        var tail = new OutputTail(maxLines: 2, maxLineLength: 5);
        tail.Add("one");
        tail.Add("two");
        tail.Add("three-is-long");
        Assert.Equal("two\nthree...", tail.ToString());
    }

    [Fact]
    public void Console_log_tail()
    {
        using var dir = new TempDirectory();
        var log = dir.File("console.log", string.Join("\r\n", Enumerable.Range(1, 100).Select(i => $"line {i}")) + "\r\n\r\n");
        Assert.Equal("line 99\nline 100", ConsoleLogTail.Read(log, lines: 2));
        Assert.Equal("(console log is empty)", ConsoleLogTail.Read(dir.File("empty.log", "")));
        Assert.Contains("no console log at", ConsoleLogTail.Read(Path.Combine(dir.Path, "missing.log")));
    }
}

public class LeftoverVmProcessesTests
{
    [Fact]
    public async Task Finds_and_kills_processes_naming_the_state_directory_only()
    {
        using var dir = new TempDirectory();
        var state = Directory.CreateDirectory(Path.Combine(dir.Path, "state")).FullName;
        var sibling = Directory.CreateDirectory(Path.Combine(dir.Path, "state2")).FullName;
        // An argument names a file in the directory, as QEMU's -pidfile/-qmp arguments do. `tail -f` never forks (a
        // shell loop's fork would show the same command line until its exec, and be found too).
        string leftoverFile = Path.Combine(state, "qmp.log"), otherFile = Path.Combine(sibling, "qmp.log");
        File.WriteAllText(leftoverFile, "");
        File.WriteAllText(otherFile, "");
        using var leftover = SupervisedProcess.Start("tail", "tail", ["-f", leftoverFile]);
        using var other = SupervisedProcess.Start("tail", "tail", ["-f", otherFile]);
        try
        {
            var found = LeftoverVmProcesses.Find(state);
            Assert.Equal([leftover.Pid], found.Select(p => p.Pid));

            var killed = await LeftoverVmProcesses.KillAsync(state, new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token);
            Assert.Equal([leftover.Pid], killed.Select(p => p.Pid));
            Assert.Equal(128 + PosixSignal.SigKill, await leftover.Exited.WaitAsync(TimeSpan.FromMinutes(1)));
            Assert.False(other.HasExited);
            Assert.Empty(LeftoverVmProcesses.Find(state));
        }
        finally
        {
            other.Kill();
        }
    }
}
