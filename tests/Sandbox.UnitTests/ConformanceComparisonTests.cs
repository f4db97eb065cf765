using Sandbox.Conformance;

namespace Sandbox.UnitTests;

public class ConformanceComparisonTests
{
    private static SpecResult Spec(string name, SpecOutcome outcome) => new(name, outcome, outcome == SpecOutcome.Failed ? "boom" : "");

    [Fact]
    public void Ginkgo_junit_specs_are_read_with_their_outcome_and_suite_nodes_are_left_out_unless_they_failed()
    {
        const string xml = """
            <testsuites><testsuite name="critest">
              <testcase name="[BeforeSuite]" status="passed"></testcase>
              <testcase name="[It] [k8s.io] Container runtime should support basic operations [Conformance]" status="passed"></testcase>
              <testcase name="[It] [k8s.io] Streaming runtime should support portforward [Conformance]" status="failed">
                <failure message="dial tcp 127.0.0.1:12001: connect: connection refused&#10;more" type="failed">...</failure>
              </testcase>
              <testcase name="[It] [k8s.io] Security Context SELinux" status="skipped"><skipped message="skipped"></skipped></testcase>
              <testcase name="[AfterSuite]" status="failed"><failure message="cleanup failed"></failure></testcase>
            </testsuite></testsuites>
            """;
        var specs = CritestRun.ReadJunitReport(xml);
        Assert.Equal(4, specs.Count);
        Assert.Equal(new SpecResult("[k8s.io] Container runtime should support basic operations [Conformance]", SpecOutcome.Passed, ""), specs[0]);
        Assert.Equal(SpecOutcome.Failed, specs[1].Outcome);
        Assert.Equal("dial tcp 127.0.0.1:12001: connect: connection refused", specs[1].Failure);
        Assert.Equal(SpecOutcome.Skipped, specs[2].Outcome);
        Assert.Equal(new SpecResult("[AfterSuite]", SpecOutcome.Failed, "cleanup failed"), specs[3]);
    }

    [Fact]
    public void A_spec_runc_passes_and_this_runtime_fails_is_a_regression_unless_an_exception_covers_it()
    {
        var reference = new[]
        {
            Spec("a passes both", SpecOutcome.Passed),
            Spec("b HostNetwork is true", SpecOutcome.Passed),
            Spec("c port-forward", SpecOutcome.Passed),
            Spec("d fails both", SpecOutcome.Failed),
            Spec("e fails under runc only", SpecOutcome.Failed),
            Spec("f skipped here", SpecOutcome.Passed),
        };
        var here = new[]
        {
            Spec("a passes both", SpecOutcome.Passed),
            Spec("b HostNetwork is true", SpecOutcome.Failed),
            Spec("c port-forward", SpecOutcome.Failed),
            Spec("d fails both", SpecOutcome.Failed),
            Spec("e fails under runc only", SpecOutcome.Passed),
            Spec("f skipped here", SpecOutcome.Skipped),
        };
        var exceptions = new[] { new ConformanceException("HostNetwork is true", "no host network in a VM", "refused"), new ConformanceException("HostPID", "x", "y") };

        var comparison = ConformanceComparison.Compare(reference, here, exceptions);

        Assert.Equal(["b HostNetwork is true", "c port-forward", "f skipped here"], comparison.Regressions.Select(r => r.Here.Name));
        Assert.Equal(["c port-forward", "f skipped here"], comparison.Unexcused.Select(r => r.Here.Name));
        Assert.False(comparison.Conformant);
        Assert.Equal(["d fails both"], comparison.FailBoth.Select(s => s.Name));
        Assert.Equal(["e fails under runc only"], comparison.PassHereOnly.Select(s => s.Name));
        Assert.Equal(["HostPID"], comparison.UnusedExceptions.Select(e => e.Spec));
    }

    [Fact]
    public void A_run_whose_every_regression_is_an_exception_is_conformant_and_a_spec_missing_here_counts_as_not_passed()
    {
        var reference = new[] { Spec("HostNetwork is true", SpecOutcome.Passed), Spec("only under runc", SpecOutcome.Passed) };
        var here = new[] { Spec("HostNetwork is true", SpecOutcome.Failed) };
        var exceptions = new[] { new ConformanceException("HostNetwork", "why", "kata") };

        Assert.True(ConformanceComparison.Compare(reference[..1], here, exceptions).Conformant);
        var missing = ConformanceComparison.Compare(reference, here, exceptions);
        Assert.False(missing.Conformant);
        Assert.Equal("only under runc", Assert.Single(missing.Unexcused).Here.Name);
    }

    [Fact]
    public void The_exceptions_file_needs_spec_why_and_kata_in_each_entry()
    {
        var parsed = ConformanceExceptions.Parse("""
            [[exception]]
            spec = "HostNetwork is true"
            why = "a VM has its own network stack"
            kata = "refused"
            """, "x.toml");
        Assert.Equal(new ConformanceException("HostNetwork is true", "a VM has its own network stack", "refused"), Assert.Single(parsed));
        Assert.Empty(ConformanceExceptions.Parse("# nothing yet\n", "x.toml"));

        var missing = Assert.Throws<InvalidDataException>(() => ConformanceExceptions.Parse("[[exception]]\nspec = \"a\"\nwhy = \"b\"\n", "x.toml"));
        Assert.Contains("'kata'", missing.Message);
        Assert.Throws<InvalidDataException>(() => ConformanceExceptions.Parse("[[exception]\n", "x.toml"));
    }

    [Fact]
    public void Stand_in_images_are_pushed_under_the_path_critest_pulls_with_a_registry_prefix()
    {
        Assert.Equal("e2e-test-images/busybox:latest", new ConformanceImages.StandIn("registry.k8s.io/e2e-test-images/busybox:1.29-2", null).RegistryPath);
        Assert.Equal("k8s-staging-cri-tools/hostnet-nginx-amd64:latest",
            new ConformanceImages.StandIn("gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest", "12003").RegistryPath);
    }
}
