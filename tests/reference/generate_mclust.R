#!/usr/bin/env Rscript
## Reference results from R's mclust for gaussmix's model-selection tests.
##
## Run from the repository root:
##     Rscript tests/reference/generate_mclust.R
##
## Needs R with the mclust and jsonlite packages (Debian: r-base-core,
## r-cran-mclust, r-cran-jsonlite).  Only used to (re)generate the fixtures;
## the Python tests read the CSV/JSON files and never need R.
##
## For every data set it writes
##   tests/reference/<name>.csv          the data (numeric columns only)
##   tests/reference/mclust_<name>.json  mclustBIC over G = 1:9 and all models,
##                                       plus the fitted model of every cell
## and finally tests/reference/summary.txt (BIC tables, NA cells marked).
## See tests/reference/README.md for the JSON layout.

suppressPackageStartupMessages({
  library(mclust)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(file_arg)) dirname(normalizePath(file_arg)) else "tests/reference"

set.seed(1)  # not used by mclust here (n < mclust.options("subset")), kept for safety

MODELS_MULTI <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
                  "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
MODELS_1D <- c("E", "V")
GS <- 1:9

ub <- function(x) jsonlite::unbox(x)

## ---------------------------------------------------------------- helpers
num17 <- function(x) {
  ## 17 significant digits: with a correctly rounding reader (Python's float(),
  ## numpy) this always gives back the exact double.  (jsonlite 1.8 caps its
  ## output at 15 significant digits, so the JSON is written by to_json() below.)
  sprintf("%.17g", as.numeric(x))
}

num_short <- function(x) {
  ## for the data CSVs: shortest of %.15g / %.16g / %.17g that reads back to
  ## the same double (R's reader is exact for these short decimal inputs)
  x <- as.numeric(x)
  out <- sprintf("%.15g", x)
  for (dg in 16:17) {
    bad <- is.finite(x) & as.numeric(out) != x
    if (!any(bad)) break
    out[bad] <- sprintf(paste0("%.", dg, "g"), x[bad])
  }
  out
}

## minimal JSON writer with full double precision.
## lists with names -> objects, lists without names -> arrays,
## atomic vectors -> arrays unless marked with jsonlite::unbox() (-> scalar),
## NA / NaN / Inf -> null.
json_atoms <- function(x) {
  if (is.character(x) || is.factor(x)) {
    x <- as.character(x)
    out <- vapply(x, function(s) as.character(jsonlite::toJSON(jsonlite::unbox(s))), character(1))
    out[is.na(x)] <- "null"
  } else if (is.logical(x)) {
    out <- ifelse(x, "true", "false"); out[is.na(x)] <- "null"
  } else if (is.integer(x)) {
    out <- as.character(x); out[is.na(x)] <- "null"
  } else {
    out <- num17(x); out[!is.finite(x)] <- "null"
  }
  unname(out)
}
to_json <- function(x, indent = 0L) {
  if (is.null(x)) return("null")
  if (is.list(x)) {
    if (length(x) == 0) return(if (is.null(names(x))) "[]" else "{}")
    parts <- vapply(x, to_json, character(1), indent = indent + 1L)
    if (!is.null(names(x))) {
      keys <- json_atoms(names(x))
      ## top-level objects and the "cells" entries get one member per line
      sep <- if (indent <= 1L) paste0(",\n", strrep(" ", indent + 1L)) else ","
      return(paste0("{", if (indent <= 1L) paste0("\n", strrep(" ", indent + 1L)) else "",
                    paste0(keys, ":", parts, collapse = sep),
                    if (indent <= 1L) paste0("\n", strrep(" ", indent)) else "", "}"))
    }
    sep <- if (indent <= 1L) paste0(",\n", strrep(" ", indent + 1L)) else ","
    return(paste0("[", paste(parts, collapse = sep), "]"))
  }
  a <- json_atoms(x)
  if (inherits(x, "scalar") && length(a) == 1) return(a)
  paste0("[", paste(a, collapse = ","), "]")
}

write_data_csv <- function(X, path) {
  X <- as.data.frame(X)
  cols <- lapply(X, num_short)
  lines <- c(paste(names(X), collapse = ","),
             do.call(paste, c(cols, sep = ",")))
  writeLines(lines, path)
}

## d x d x G array  ->  G x d x d (component-major, then row, then column)
comp_major3 <- function(a) {
  a <- unclass(a); dimnames(a) <- NULL
  lapply(seq_len(dim(a)[3]), function(k) {
    m <- a[, , k, drop = FALSE]
    dim(m) <- dim(a)[1:2]
    lapply(seq_len(nrow(m)), function(i) m[i, ])
  })
}
rows2 <- function(m) {          # matrix -> list of rows
  m <- as.matrix(m); dimnames(m) <- NULL
  lapply(seq_len(nrow(m)), function(i) m[i, ])
}
vec <- function(x) { x <- as.numeric(x); I(x) }

## log-likelihood of a Gaussian mixture at given parameters (model-agnostic)
loglik_at <- function(X, pro, mu, sigma) {
  X <- as.matrix(X); n <- nrow(X); d <- ncol(X); G <- length(pro)
  L <- matrix(0, n, G)
  for (k in seq_len(G)) {
    S <- matrix(sigma[, , k], d, d)
    R <- chol(S)
    Y <- backsolve(R, t(X) - mu[, k], transpose = TRUE)
    L[, k] <- log(pro[k]) - 0.5 * colSums(Y^2) - sum(log(diag(R))) -
      0.5 * d * log(2 * pi)
  }
  m <- apply(L, 1, max)
  sum(m + log(rowSums(exp(L - m))))
}

## run expr, collecting warnings (and the error, if any)
capture <- function(expr) {
  warns <- character(0)
  val <- withCallingHandlers(
    tryCatch(expr, error = function(e) structure(list(msg = conditionMessage(e)),
                                                 class = "captured_error")),
    warning = function(w) { warns <<- c(warns, conditionMessage(w))
                            invokeRestart("muffleWarning") })
  list(value = val, warnings = unique(warns),
       error = if (inherits(val, "captured_error")) val$msg else NULL)
}

## parameters of an mclust fit -> pro, mean (d x G), sigma (d x d x G) + decomposition
std_params <- function(par, d, G) {
  pro <- as.numeric(par$pro)
  mu <- matrix(as.numeric(par$mean), d, G)
  v <- par$variance
  if (!is.null(v$sigma)) {
    sigma <- array(as.numeric(v$sigma), c(d, d, G))
  } else if (!is.null(v$sigmasq)) {              # 1-D models E / V / X
    s2 <- rep_len(as.numeric(v$sigmasq), G)
    sigma <- array(s2, c(1, 1, G))
  } else if (!is.null(v$Sigma)) {
    sigma <- array(rep(as.numeric(v$Sigma), G), c(d, d, G))
  } else stop("no covariance in parameters")
  dec <- list()
  if (!is.null(v$scale)) dec$scale <- vec(v$scale)
  if (!is.null(v$sigmasq)) dec$sigmasq <- vec(v$sigmasq)
  if (!is.null(v$shape)) {
    dec$shape <- if (is.matrix(v$shape)) rows2(t(v$shape)) else vec(v$shape)
  }
  if (!is.null(v$orientation)) {
    o <- v$orientation
    dec$orientation <- if (length(dim(o)) == 3) comp_major3(o) else rows2(o)
  }
  if (!is.null(v$Sigma)) dec$Sigma <- rows2(v$Sigma)
  list(pro = pro, mean = mu, sigma = sigma, dec = dec,
       variance_modelName = v$modelName)
}

## ---------------------------------------------------------------- one data set
run_dataset <- function(name, X, models, description) {
  t0 <- proc.time()[["elapsed"]]
  oneD <- is.null(dim(X))
  if (oneD) {
    n <- length(X); d <- 1L
    write_data_csv(setNames(data.frame(X), description$column), file.path(out_dir, paste0(name, ".csv")))
  } else {
    X <- as.matrix(X); storage.mode(X) <- "double"
    n <- nrow(X); d <- ncol(X)
    write_data_csv(X, file.path(out_dir, paste0(name, ".csv")))
  }
  Xm <- matrix(X, n, d)

  ctrl <- emControl()
  cb <- capture(mclustBIC(X, G = GS, modelNames = models, verbose = FALSE))
  BIC <- cb$value
  RC <- attr(BIC, "returnCodes")
  init <- attr(BIC, "initialization")
  hcPairs <- init$hcPairs
  stopifnot(is.null(init$subset))

  ## initial partitions used by mclustBIC/summary for G >= 2
  parts <- list()
  for (g in GS[GS > 1]) {
    cl <- if (!oneD) hclass(hcPairs, g) else mclust:::qclass(X, g)
    parts[[as.character(g)]] <- as.integer(cl)
  }

  sm <- summary(BIC)                       # top-3 table
  best <- names(sm)[1]
  best_model <- strsplit(best, ",")[[1]][1]
  best_G <- as.integer(strsplit(best, ",")[[1]][2])

  cells <- list()
  n_na <- 0L
  for (m in models) {
    for (g in GS) {
      key <- as.character(g)
      bic_tab <- BIC[key, m]
      cell <- list(model = ub(m), G = ub(as.integer(g)),
                   n_params = ub(as.integer(nMclustParams(m, d, g))),
                   n_var_params = ub(as.integer(nVarParams(m, d, g))),
                   bic_table = ub(as.numeric(bic_tab)),
                   return_code = ub(as.integer(RC[key, m])))
      ## --- me() (or mvn() for G = 1) directly from the same initialisation
      if (g == 1) {
        dr <- capture(mvn(modelName = m, data = X))
        me_ll <- if (is.null(dr$error)) dr$value$loglik else NA_real_
        info <- NULL
        me_warn <- c(dr$warnings, dr$error)
        me_rc <- if (is.null(dr$error)) attr(dr$value, "returnCode") else NA
        me_par <- if (is.null(dr$error)) dr$value$parameters else NULL
      } else {
        z0 <- unmap(parts[[key]], groups = 1:g)
        dr <- capture(me(data = X, modelName = m, z = z0, control = ctrl,
                         warn = TRUE))
        me_ll <- if (is.null(dr$error)) dr$value$loglik else NA_real_
        info <- if (is.null(dr$error)) attr(dr$value, "info") else NULL
        me_warn <- c(dr$warnings, dr$error,
                     if (is.null(dr$error)) attr(dr$value, "WARNING"))
        me_rc <- if (is.null(dr$error)) attr(dr$value, "returnCode") else NA
        me_par <- if (is.null(dr$error)) dr$value$parameters else NULL
      }
      me_warn <- unique(me_warn)
      cell$me_loglik <- ub(as.numeric(me_ll))
      if (!is.null(info)) {
        ## info is (iterations, error); its names and type vary by model
        ## (a list for EVV, "niterout"/"errout" for VEE/EVE/VVE); a negative
        ## iteration count means the iteration limit was reached
        inf <- as.numeric(unlist(info))
        cell$iterations <- ub(as.integer(inf[1]))
        cell$em_error <- ub(inf[2])
        inner <- attr(info, "inner")
        if (!is.null(inner)) {
          inn <- as.numeric(unlist(inner))
          cell$inner_iterations <- ub(as.integer(inn[1]))
          cell$inner_error <- ub(inn[2])
        }
      } else {
        cell$iterations <- ub(if (g == 1) 0L else NA_integer_)
      }
      cell$warnings <- I(as.character(me_warn))

      if (is.na(bic_tab)) {
        n_na <- n_na + 1L
        reason <- if (length(me_warn)) paste(me_warn, collapse = "; ") else "unknown"
        cell$status <- ub("NA")
        cell$reason <- ub(reason)
        cells[[length(cells) + 1]] <- cell
        next
      }

      ## --- the fitted Mclust object for this cell (same path as Mclust())
      fr <- capture(Mclust(X, G = g, modelNames = m, x = BIC, verbose = FALSE))
      if (!is.null(fr$error) || is.null(fr$value)) {
        cell$status <- ub(paste("error:", if (is.null(fr$error)) "Mclust returned NULL" else fr$error))
        cells[[length(cells) + 1]] <- cell
        next
      }
      fit <- fr$value
      p <- std_params(fit$parameters, d, g)
      status <- if (RC[key, m] == 0) "ok" else paste0("warning: return code ", RC[key, m])
      cell$status <- ub(status)
      cell$loglik <- ub(fit$loglik)
      cell$bic <- ub(fit$bic)
      cell$icl <- ub(fit$icl)
      cell$df <- ub(as.integer(fit$df))
      cell$mclust_modelName <- ub(fit$modelName)
      cell$variance_modelName <- ub(p$variance_modelName)
      if (length(fr$warnings)) cell$mclust_warnings <- I(fr$warnings)
      ## parameters as Mclust reports them (summary.mclustBIC may replace me()'s
      ## parameters by one more M-step on the final z; flag that)
      remstep <- FALSE
      if (!is.null(me_par) && g > 1) {
        remstep <- !isTRUE(all.equal(as.numeric(me_par$pro), p$pro, tolerance = 0)) ||
                   !isTRUE(all.equal(as.numeric(me_par$mean), as.numeric(p$mean), tolerance = 0))
      }
      cell$params_from_extra_mstep <- ub(remstep)
      cell$loglik_at_params <- ub(loglik_at(Xm, p$pro, p$mean, p$sigma))
      if (!is.null(me_par) && g > 1) {
        pm <- std_params(me_par, d, g)
        cell$loglik_at_me_params <- ub(loglik_at(Xm, pm$pro, pm$mean, pm$sigma))
        if (remstep) {                 # me()'s own final parameters
          cell$me_pro <- vec(pm$pro)
          cell$me_mean <- rows2(t(pm$mean))
          cell$me_sigma <- comp_major3(pm$sigma)
        }
      }
      cell$pro <- vec(p$pro)
      cell$mean <- rows2(t(p$mean))          # [k][i]
      cell$sigma <- comp_major3(p$sigma)     # [k][i][j]
      cell$decomposition <- p$dec
      cell$classification <- I(as.integer(fit$classification))
      cells[[length(cells) + 1]] <- cell
    }
  }

  ## cross-check: mclustICL's own table (recomputes mclustBIC; note that its
  ## x= argument expects a previous mclustICL object, not an mclustBIC one)
  icl_tab <- suppressWarnings(mclustICL(X, G = GS, modelNames = models,
                                        verbose = FALSE))

  opts <- mclust.options()
  out <- list(
    dataset = ub(name),
    description = ub(description$text),
    columns = I(if (oneD) description$column else colnames(X)),
    n = ub(as.integer(n)), d = ub(as.integer(d)),
    mclust_version = ub(as.character(packageVersion("mclust"))),
    r_version = ub(R.version.string),
    jsonlite_version = ub(as.character(packageVersion("jsonlite"))),
    generated_by = ub("Rscript tests/reference/generate_mclust.R"),
    call = ub(sprintf("mclustBIC(X, G = 1:9, modelNames = c(%s))",
                      paste0('"', models, '"', collapse = ", "))),
    models = I(models), G = I(as.integer(GS)),
    options = list(hcModelName = ub(if (oneD) "none (1-D: quantile classes, qclass)" else opts$hcModelName),
                   hcUse = ub(if (oneD) "none" else opts$hcUse),
                   subset = ub(opts$subset),
                   emModelNames = I(opts$emModelNames),
                   warn = ub(opts$warn)),
    em_control = list(tol = I(ctrl$tol), itmax = I(as.numeric(ctrl$itmax)),
                      eps = ub(ctrl$eps), equalPro = ub(ctrl$equalPro)),
    mclustBIC_warnings = I(cb$warnings),
    selected = list(model = ub(best_model), G = ub(best_G),
                    bic = ub(as.numeric(sm[1]))),
    top3 = lapply(seq_along(sm), function(i) {
      s <- strsplit(names(sm)[i], ",")[[1]]
      list(model = ub(s[1]), G = ub(as.integer(s[2])), bic = ub(as.numeric(sm[i])))
    }),
    n_na_cells = ub(n_na),
    init = list(
      method = ub(if (oneD) "qclass (quantile classes)" else
                   sprintf("hc(modelName = \"%s\", use = \"%s\")", opts$hcModelName, opts$hcUse)),
      partitions = parts,                       # G -> length-n labels (1-based)
      hc_merges = if (!oneD) rows2(t(hcPairs)) else NULL   # (n-1) x 2, 1-based
    ),
    icl_table = lapply(models, function(m) I(as.numeric(icl_tab[, m]))),
    cells = cells
  )
  names(out$icl_table) <- models
  if (oneD) out$init$hc_merges <- NULL

  path <- file.path(out_dir, paste0("mclust_", name, ".json"))
  writeLines(to_json(out), path)

  ## sanity check: the file parses and has every cell
  back <- jsonlite::fromJSON(path, simplifyVector = FALSE)
  stopifnot(length(back$cells) == length(models) * length(GS))
  list(name = name, BIC = BIC, RC = RC, sm = sm, n_na = n_na, cells = cells,
       secs = proc.time()[["elapsed"]] - t0, models = models)
}

## ---------------------------------------------------------------- summary table
format_summary <- function(res) {
  B <- res$BIC
  lines <- c(sprintf("== %s  (mclust %s)  selected: %s  BIC = %.4f",
                     res$name, packageVersion("mclust"), names(res$sm)[1], res$sm[1]),
             "   mclust BIC = 2 logL - p log n (higher is better); NA = mclust could not fit")
  hdr <- sprintf("%5s", "G")
  for (m in colnames(B)) hdr <- paste0(hdr, sprintf(" %11s", m))
  lines <- c(lines, hdr)
  for (g in rownames(B)) {
    row <- sprintf("%5s", g)
    for (m in colnames(B)) {
      v <- B[g, m]
      row <- paste0(row, if (is.na(v)) sprintf(" %11s", "NA") else sprintf(" %11.3f", v))
    }
    lines <- c(lines, row)
  }
  nas <- Filter(function(c) identical(as.character(c$status), "NA"), res$cells)
  if (length(nas)) {
    lines <- c(lines, "   NA cells:")
    for (c in nas) lines <- c(lines, sprintf("     %s G=%d: %s", c$model, c$G, c$reason))
  }
  mism <- Filter(function(c) !is.null(c$loglik) && !identical(as.numeric(c$loglik), as.numeric(c$me_loglik)), res$cells)
  lines <- c(lines, sprintf("   cells where Mclust loglik != me() loglik from the same init: %d", length(mism)))
  lines <- c(lines, "")
  lines
}

## ---------------------------------------------------------------- data sets
data("faithful", package = "datasets")
data("iris", package = "datasets")
data("diabetes", package = "mclust")
data("banknote", package = "mclust")

results <- list()
results$faithful <- run_dataset("faithful", as.matrix(faithful), MODELS_MULTI,
  list(text = "R datasets::faithful (eruptions, waiting), 272 x 2"))
results$iris <- run_dataset("iris", as.matrix(iris[, 1:4]), MODELS_MULTI,
  list(text = "R datasets::iris, the 4 numeric columns, 150 x 4"))
results$diabetes <- run_dataset("diabetes", as.matrix(diabetes[, c("glucose", "insulin", "sspg")]),
  MODELS_MULTI, list(text = "mclust::diabetes, columns glucose, insulin, sspg (raw units), 145 x 3"))
results$banknote <- run_dataset("banknote", as.matrix(banknote[, -1]), MODELS_MULTI,
  list(text = "mclust::banknote, the 6 numeric columns (Length, Left, Right, Bottom, Top, Diagonal), 200 x 6"))
results$faithful_waiting_1d <- run_dataset("faithful_waiting_1d", as.numeric(faithful$waiting),
  MODELS_1D, list(text = "R datasets::faithful$waiting as a 1-D vector, 272 values", column = "waiting"))

summ <- c(sprintf("Reference results from R's mclust %s (%s); generated by Rscript tests/reference/generate_mclust.R",
                  packageVersion("mclust"), R.version.string), "")
for (r in results) summ <- c(summ, format_summary(r))
for (r in results) message(sprintf("%s: %.1f s", r$name, r$secs))
writeLines(summ, file.path(out_dir, "summary.txt"))
cat(summ, sep = "\n")
